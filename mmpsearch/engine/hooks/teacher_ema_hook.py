# Copyright (c) mmpsearch contributors. All rights reserved.
"""Update SPNet's EMA teacher after every optimiser step (spnet.md §3.10).

mmengine's :class:`~mmengine.hooks.EMAHook` averages the *whole* model and swaps the
average in for validation; SPNet's teacher is instead a part of the model that the
training forward uses (it embeds the prototypes of the re-id queue). This hook only calls
``model.update_teacher()`` (:class:`SPNetPretrain`, built on mmengine's
:class:`~mmengine.model.ExponentialMovingAverage`) after each training iteration, before
the checkpoint hook saves, so a checkpoint holds the teacher of the step it was taken at.
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmpsearch.registry import HOOKS


@HOOKS.register_module()
class TeacherEMAHook(Hook):
    """Call ``update_teacher()`` on the (unwrapped) model after every training iteration.

    Raises:
        TypeError: at ``before_train`` when the model has no ``update_teacher``.
    """

    priority = 'ABOVE_NORMAL'  # before CheckpointHook (VERY_LOW) saves the iteration

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner) -> None:
        if not callable(getattr(self._model(runner), 'update_teacher', None)):
            raise TypeError(f'TeacherEMAHook: {type(self._model(runner)).__name__} has no '
                            'update_teacher(); use a model with an EMA teacher '
                            '(SPNetPretrain)')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._model(runner).update_teacher()
