# Copyright (c) mmpsearch contributors. All rights reserved.
"""Flush denormal floats to zero on the CPU while a Runner runs.

From random init, a few iterations into training, many gradients of the convolutions fall
below float32's normal range (|x| < 1.2e-38, e.g. behind saturated focal-loss logits).
x86 CPUs handle such denormal numbers in microcode, and ``convolution_backward`` then gets
about 5x slower: on the quickstart SPNet a training step goes from 0.35 s to 1.2-1.7 s
after about 20 iterations (``tools/analysis_tools/benchmark_train.py --keep-denormals``
measures it, see docs/benchmarks.md). Flushing them to zero (FTZ/DAZ) removes the stall;
values that small carry no information for SGD/AdamW updates. The setting only concerns
CPU threads (GPUs process denormals at full speed), so for CUDA tensors the hook changes
nothing, and it is cheap everywhere.
"""
from mmengine.hooks import Hook

from mmpsearch.registry import HOOKS
from mmpsearch.utils.denormal import set_flush_denormal_all_threads


@HOOKS.register_module()
class FlushDenormalHook(Hook):
    """Flush denormals to zero for the duration of a run, in all of PyTorch's CPU threads.

    (:func:`~mmpsearch.utils.set_flush_denormal_all_threads`; plain
    :func:`torch.set_flush_denormal` would reach the main thread only.)

    ``before_run`` runs before ``train``, ``val`` and ``test``, so every loop is covered;
    ``after_run`` restores PyTorch's default (denormals kept), so a Runner used inside a
    larger program (tests, notebooks) does not change its numerics afterwards.

    Args:
        enable (bool): flush denormals during the run. ``False`` keeps PyTorch's
            default (to measure the effect, or to compare numerics bit for bit).
    """

    priority = 'VERY_HIGH'

    def __init__(self, enable: bool = True):
        self.enable = enable
        self.active = False

    def before_run(self, runner) -> None:
        if self.enable:
            # Returns False on a CPU without SSE3 (then nothing changes).
            self.active = set_flush_denormal_all_threads(True)
            runner.logger.info('FlushDenormalHook: denormal floats are flushed to zero on '
                               f'the CPU ({"on" if self.active else "not supported"})')

    def after_run(self, runner) -> None:
        if self.active:
            set_flush_denormal_all_threads(False)
            self.active = False
