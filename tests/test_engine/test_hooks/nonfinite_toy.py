# Copyright (c) mmpsearch contributors. All rights reserved.
"""A toy model and data set whose training goes non-finite on purpose, plus a CPU stand-in
for ``AmpOptimWrapper`` (which refuses to build without an accelerator).

Imported by the in-process tests and, copied next to a config, by the ``tools/train.py``
subprocess test (``custom_imports=['nonfinite_toy']``), so it depends on nothing in tests/.
"""
from contextlib import contextmanager

import torch
from mmengine.dataset import BaseDataset
from mmengine.model import BaseModel
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmpsearch.registry import DATASETS, MODELS, OPTIM_WRAPPERS


class _InfGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by +inf."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float('inf')


@MODELS.register_module(force=True)
class NonFiniteToyModel(BaseModel):
    """Linear regression with two loss terms that fails at training iteration ``at``.

    Args:
        fail (str): ``'none'``; ``'loss'`` (``loss_aux`` is NaN); ``'grad'`` (the loss is
            finite, its gradient is +inf); ``'buffer'`` (a buffer becomes NaN, the loss
            stays finite).
        at (int): the first failing training iteration (1-based, as the log counts).
        repeat (int): how many consecutive iterations fail.
    """

    def __init__(self, fail: str = 'none', at: int = 2, repeat: int = 1):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)
        self.register_buffer('running', torch.zeros(1))
        self.fail, self.at, self.repeat = fail, at, repeat
        self.calls = 0

    def forward(self, inputs, data_samples=None, mode='tensor', **kwargs):
        x = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.linear(x)
        if mode != 'loss':
            return out
        self.calls += 1
        failing = self.at <= self.calls < self.at + self.repeat
        loss_fit = (out - 1).pow(2).mean()
        loss_aux = 0.1 * out.abs().mean()
        if failing and self.fail == 'loss':
            loss_aux = loss_aux * float('nan')
        elif failing and self.fail == 'grad':
            loss_fit = _InfGrad.apply(loss_fit)
        elif failing and self.fail == 'buffer':
            self.running.fill_(float('nan'))
        return dict(loss_fit=loss_fit, loss_aux=loss_aux)


@DATASETS.register_module(force=True)
class NonFiniteToyDataset(BaseDataset):

    def __init__(self, length: int = 8, **kwargs):
        self.length = length
        super().__init__(**kwargs)

    def load_data_list(self):
        return [dict(inputs=torch.tensor([float(i % 4), 1.0])) for i in range(self.length)]


@OPTIM_WRAPPERS.register_module(force=True)
class CpuAmpOptimWrapper(AmpOptimWrapper):
    """``AmpOptimWrapper``'s backward/step with ``torch.amp.GradScaler('cpu')`` and no
    autocast: the real loss-scaler logic (unscale, skip the step on inf/NaN gradients,
    lower the scale) on a machine without an accelerator."""

    def __init__(self, init_scale: float = 16.0, **kwargs):
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.cast_dtype = None
        self.loss_scaler = torch.amp.GradScaler('cpu', init_scale=init_scale)

    @contextmanager
    def optim_context(self, model):
        with OptimWrapper.optim_context(self, model):
            yield
