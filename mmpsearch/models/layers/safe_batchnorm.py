# Copyright (c) mmpsearch contributors. All rights reserved.
"""BatchNorm1d that tolerates a training batch of one (spnet.md §3.4).

The re-id projector of SPNet normalises each branch with ``BatchNorm1d(affine=False)`` and
uses "a variant of BatchNorm1d that is safe at batch size 1": with a single row there is no
batch variance, so this layer normalises it with the running statistics (without updating
them), and an empty batch passes through unchanged. The released layer's exact fallback is
not documented in the spec; this choice keeps the output distribution of the other batches.
"""
import torch.nn.functional as F
from torch import Tensor, nn

from mmpsearch.registry import MODELS

__all__ = ['SafeBatchNorm1d']


@MODELS.register_module('SafeBN1d')
class SafeBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` with the batch-size-1 fallback described above."""

    _abbr_ = 'bn'

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` of shape (N, C)."""
        if x.shape[0] == 0:
            return x
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                self.bias, False, 0.0, self.eps)
        return super().forward(x)
