# Copyright (c) mmpsearch contributors. All rights reserved.
"""The EMA ("MoCo") teacher of SPNet pre-training (spnet.md §3.10).

The teacher holds copies of the backbone (trunk + FPN) and of the re-id head (stage-4
copy + NAE projector), without gradients. After every optimiser step each teacher
parameter moves towards its student parameter,

    θ_k ← m θ_k + (1 − m) θ_q,    m = 0.9999,

and buffers are *not* updated from the student (the teacher's own BatchNorm statistics
are its own). It supplies the embeddings of the prototype queue (§4.6).

:class:`TeacherEMA` is mmengine's :class:`~mmengine.model.ExponentialMovingAverage`
(deep copy without gradients, ``steps`` buffer, in-place ``lerp_`` averaging) with two
changes that the spec needs: buffers are left alone (mmengine copies the source's buffers
when ``update_buffers=False``), and the first update already averages (mmengine copies
the source outright at ``steps == 0``; here the teacher starts as a copy of the student,
made by :meth:`sync` once the student's pretrained weights are loaded). mmengine's
``momentum`` is the weight of the *student*, 1 − m = 1e-4.
"""
from typing import Optional

import torch
from mmengine.model import ExponentialMovingAverage
from torch import nn

from mmpsearch.registry import MODELS

__all__ = ['TeacherEMA']


@MODELS.register_module()
class TeacherEMA(ExponentialMovingAverage):
    """Parameter-only exponential moving average of a module.

    Args:
        model (nn.Module): the student module (deep-copied).
        momentum (float): weight of the student in each update, 1 − m (SPNet: 1e-4).
        interval (int): update every ``interval`` calls. Defaults to 1.
        device (torch.device, optional): where the copy lives.
    """

    def __init__(self, model: nn.Module, momentum: float = 1e-4, interval: int = 1,
                 device: Optional[torch.device] = None):
        super().__init__(model, momentum=momentum, interval=interval, device=device,
                         update_buffers=False)

    @torch.no_grad()
    def sync(self, model: nn.Module) -> None:
        """Copy the student's parameters *and* buffers (the teacher's starting point)."""
        self.module.load_state_dict(model.state_dict(), strict=True)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """θ_k ← (1 − momentum) θ_k + momentum θ_q for every floating-point parameter.

        Args:
            model (nn.Module): the student, with the same parameter names as the copy.
        """
        if int(self.steps) % self.interval == 0:
            source = dict(model.named_parameters())
            if source.keys() != self.avg_parameters.keys():
                raise KeyError('TeacherEMA: the student has other parameters than the '
                               f'teacher: {sorted(source.keys() ^ self.avg_parameters.keys())[:5]}')
            for name, p_avg in self.avg_parameters.items():
                if p_avg.dtype.is_floating_point:
                    self.avg_func(p_avg.data, source[name].data.to(p_avg.device), self.steps)
        self.steps += 1
