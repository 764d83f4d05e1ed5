# Copyright (c) mmpsearch contributors. All rights reserved.
"""Keep the model's 4-D weights in channels-last (NHWC) memory format while a Runner runs.

oneDNN, which runs PyTorch's CPU convolutions, works in a blocked channels-last layout; with
NCHW weights and activations every convolution reorders its operands first and its output
back. With channels-last weights the first convolution's output is already NHWC and the
format propagates through the network, so most reorders disappear: on the CPU quick-start
SPNet a training step takes about 12 % less time (0.62 s -> 0.55 s per batch of 8,
``tools/analysis_tools/benchmark_train.py CONFIG --device cpu [--channels-last]``). On
GPUs channels-last is also the layout that tensor-core convolutions prefer under AMP.

The values are unchanged, only their layout: checkpoints load into either format. The
kernels differ, so the floating-point results differ in the last bits from an NCHW run (as
between two CPUs, docs/get_started.md).
"""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmpsearch.registry import HOOKS


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Convert the model's 4-D parameters and buffers to ``torch.channels_last``.

    Runs in ``before_run`` (before weights are initialised or loaded: both copy into the
    existing tensors and keep their layout) and again in ``before_train`` (a no-op unless
    something replaced a tensor in between). A model wrapped for distributed training is
    left as it is: DDP lays out its gradient buckets when it wraps the model.

    Args:
        enable (bool): convert. ``False`` keeps PyTorch's default layout.
    """

    priority = 'VERY_HIGH'

    def __init__(self, enable: bool = True):
        self.enable = enable

    def _convert(self, runner) -> None:
        if not self.enable:
            return
        if is_model_wrapper(runner.model):
            runner.logger.warning('ChannelsLastHook: the model is wrapped '
                                  f'({type(runner.model).__name__}); it keeps its layout')
            return
        runner.model.to(memory_format=torch.channels_last)

    def before_run(self, runner) -> None:
        self._convert(runner)
        if self.enable and not is_model_wrapper(runner.model):
            runner.logger.info('ChannelsLastHook: 4-D weights in channels-last layout')

    def before_train(self, runner) -> None:
        self._convert(runner)
