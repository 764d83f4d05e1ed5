# Copyright (c) mmpsearch contributors. All rights reserved.
"""Evaluate the model once before training starts.

Person-search numbers of an untrained model are the baseline that shows what training
bought (the quickstart prints both). The hook runs the Runner's validation loop in
``before_train``, so the numbers land in the same log, logger and visualiser backends as
every later evaluation.
"""
from mmengine.hooks import Hook

from mmpsearch.registry import HOOKS


@HOOKS.register_module()
class EvaluateBeforeTrainHook(Hook):
    """Run ``runner.val_loop`` once before the first training iteration.

    Args:
        skip_on_resume (bool): do nothing when the run resumes from a checkpoint (the
            baseline was logged by the original run).
    """

    priority = 'LOW'

    def __init__(self, skip_on_resume: bool = True):
        self.skip_on_resume = skip_on_resume

    def before_train(self, runner) -> None:
        if runner.val_loop is None:
            raise RuntimeError('EvaluateBeforeTrainHook needs val_dataloader, val_cfg and '
                               'val_evaluator in the config')
        if self.skip_on_resume and (runner.iter > 0 or runner.epoch > 0):
            return
        runner.logger.info('Evaluating the model before training (baseline) ...')
        metrics = runner.val_loop.run()
        runner.message_hub.update_info('metrics_before_train', metrics)
