# Copyright (c) mmpsearch contributors. All rights reserved.
from mmengine.evaluator import BaseMetric
from mmengine.runner import Runner

from mmpsearch.registry import METRICS
from tests.test_engine.test_runner_smoke import _cfg


@METRICS.register_module(force=True)
class _CountingMetric(BaseMetric):
    calls = []

    def process(self, data_batch, data_samples):
        self.results.append(float(data_samples[0].mean()))

    def compute_metrics(self, results):
        _CountingMetric.calls.append(len(results))
        return dict(score=sum(results))


_VAL_AND_HOOK = dict(
    val_dataloader=dict(dataset=dict(type='_SmokeDataset', serialize_data=False),
                        sampler=dict(type='DefaultSampler', shuffle=False),
                        batch_size=4, num_workers=0, collate_fn=dict(type='default_collate')),
    val_cfg=dict(type='ValLoop'),
    val_evaluator=dict(type='_CountingMetric'),
    custom_hooks=[dict(type='EvaluateBeforeTrainHook')])


def test_evaluates_once_before_training(tmp_path):
    _CountingMetric.calls.clear()
    cfg = _cfg(tmp_path, max_iters=2)
    cfg.update(_VAL_AND_HOOK)
    cfg['train_cfg'] = dict(by_epoch=False, max_iters=2, val_interval=100)
    runner = Runner.from_cfg(cfg)
    runner.train()
    # the baseline before training, then the loop's own validation after the last iteration
    assert _CountingMetric.calls == [2, 2]
    assert set(runner.message_hub.get_info('metrics_before_train')) == {'score'}
    assert runner.iter == 2


def test_skips_on_resume(tmp_path):
    _CountingMetric.calls.clear()
    cfg = _cfg(tmp_path, max_iters=2)
    Runner.from_cfg(cfg).train()
    cfg = _cfg(tmp_path, max_iters=3)
    cfg.update(
        resume=True, load_from=str(tmp_path / 'iter_2.pth'), experiment_name='resumed',
        **_VAL_AND_HOOK)
    cfg['train_cfg'] = dict(by_epoch=False, max_iters=3, val_interval=100)
    Runner.from_cfg(cfg).train()
    assert _CountingMetric.calls == [2]  # only the final validation
