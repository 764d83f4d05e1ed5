# Copyright (c) mmpsearch contributors. All rights reserved.
"""mmengine's default optimiser constructor, restricted to trainable parameters.

SPNet pre-training holds parameters that the optimiser must not see: the EMA teacher and
the LwF teacher (updated without gradients, spnet.md §3.10) and, in the Frozen-BB variant,
the trunk (supplement Table 7: "out of the optimiser"). mmengine's
:class:`~mmengine.optim.DefaultOptimWrapperConstructor` leaves out parameters with
``requires_grad=False`` only on its ``paramwise_cfg`` path, with one warning per parameter;
this constructor always takes that path and logs one summary line instead. The parameter
groups themselves (Mixed LR: ``custom_keys={'backbone.': dict(lr_mult=0.1,
decay_mult=0.)}``) are mmengine's ``paramwise_cfg`` rules unchanged.
"""
import logging
from collections import Counter

from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn

from mmpsearch.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['TrainableOptimWrapperConstructor']


class _DropSkipNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return 'is skipped since its requires_grad=False' not in record.getMessage()


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TrainableOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` whose optimiser holds trainable parameters only.

    Args:
        optim_wrapper_cfg (dict): as for mmengine's constructor.
        paramwise_cfg (dict, optional): mmengine ``paramwise_cfg`` (``custom_keys``, ...).
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        module = model.module if hasattr(model, 'module') else model
        frozen = Counter(name.split('.')[0] for name, p in module.named_parameters()
                         if not p.requires_grad)
        if not self.paramwise_cfg:
            self.paramwise_cfg = dict(custom_keys={})  # the path that skips frozen ones
        logger = MMLogger.get_current_instance()
        quiet = _DropSkipNotices()
        logger.addFilter(quiet)
        try:
            wrapper = super().__call__(model)
        finally:
            logger.removeFilter(quiet)
        if frozen:
            parts = ', '.join(f'{k}.* ({n})' for k, n in sorted(frozen.items()))
            print_log(f'TrainableOptimWrapperConstructor: left out {sum(frozen.values())} '
                      f'parameter tensors without gradients: {parts}', logger='current')
        return wrapper
