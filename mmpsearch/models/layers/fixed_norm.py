# Copyright (c) mmpsearch contributors. All rights reserved.
"""Class logits computed from the norm of the offset embedding (spnet.md §3.6).

SPNet scores an anchor (or proposal) by how close the query embedding is to it:
``w = ||x_o||`` with ``x_o = x_q - x_a``. The *FixedNorm* transform (supplement Eq. 3-4)

    mu = sqrt(2) * Gamma((d + 1) / 2) / Gamma(d / 2),   s = sqrt(d - mu^2),
    z = (w - mu) / s,

gives ``E[z] = 0`` and ``Var[z] = 1`` when ``x_o ~ N(0, I_d)`` (w is chi-distributed with
d degrees of freedom). The released default is the *negative* norm ``logit = -z``
(``sign='neg'``, "FixedNorm (-)"), so a small distance gives a high score; ``sign='pos'`` is
the Table 9 "(+)" ablation. :class:`BatchNormLogits` is the Table 9 "BatchNorm logits"
alternative taken from NAE (BatchNorm1d(1) over the norms).

The released heads return a 2-column ``[-1e6, logit]`` tensor whose first column is a dummy
background logit; every loss and score reads only the second column, so these modules
return the single person logit.
"""
import math

import torch
from torch import Tensor, nn

from mmpsearch.registry import MODELS

__all__ = ['chi_moments', 'FixedNormLogits', 'BatchNormLogits']

# The released code evaluates Gamma directly and falls back to the large-d approximation
# mu^2 = d - 1/2 once Gamma overflows (spnet.md §3.6: "d > 256 gives NaN").
_RELEASED_MAX_EXACT_DIM = 256


def chi_moments(dim: int, mode: str = 'released'):
    """Mean and standard deviation of the chi distribution with ``dim`` degrees of freedom.

    Args:
        dim (int): embedding dimension d (> 0).
        mode (str): ``'released'`` (exact for d <= 256, else ``mu^2 = d - 1/2`` as the
            released code's overflow fallback) or ``'exact'`` (log-Gamma for every d).

    Returns:
        tuple[float, float]: ``(mu, s)`` of supplement Eq. 4.
    """
    if not isinstance(dim, int) or dim <= 0:
        raise ValueError(f'chi_moments: dim must be a positive int, got {dim!r}')
    if mode not in ('released', 'exact'):
        raise ValueError(f"chi_moments: mode must be 'released' or 'exact', got {mode!r}")
    if mode == 'released' and dim > _RELEASED_MAX_EXACT_DIM:
        mu_sq = dim - 0.5
    else:
        mu = math.sqrt(2.0) * math.exp(math.lgamma((dim + 1) / 2) - math.lgamma(dim / 2))
        mu_sq = mu * mu
    return math.sqrt(mu_sq), math.sqrt(dim - mu_sq)


def _check_sign(sign: str) -> float:
    if sign not in ('neg', 'pos'):
        raise ValueError(f"logits sign must be 'neg' (released) or 'pos', got {sign!r}")
    return -1.0 if sign == 'neg' else 1.0


@MODELS.register_module()
class FixedNormLogits(nn.Module):
    """Parameter-free FixedNorm logits ``logit = -(||x_o|| - mu_d) / s_d`` (Eq. 3-4).

    Args:
        dim (int): dimension d of the offset embedding. Defaults to 128.
        sign (str): ``'neg'`` (released default, "FixedNorm (-)") or ``'pos'`` ("(+)").
        moment_mode (str): see :func:`chi_moments`. Defaults to ``'released'``.
    """

    def __init__(self, dim: int = 128, sign: str = 'neg', moment_mode: str = 'released'):
        super().__init__()
        self.dim = dim
        self.sign = sign
        self._factor = _check_sign(sign)
        self.mu, self.s = chi_moments(dim, moment_mode)

    def forward_norm(self, norms: Tensor) -> Tensor:
        """Logits from precomputed norms.

        Args:
            norms (Tensor): ``||x_o||`` of any shape.

        Returns:
            Tensor: fp32 logits of the same shape.
        """
        # The released code casts the norm to fp32 before the affine map (AMP safety).
        return self._factor * (norms.float() - self.mu) / self.s

    def forward(self, offsets: Tensor) -> Tensor:
        """Logits of offset embeddings.

        Args:
            offsets (Tensor): x_o, shape (..., d).

        Returns:
            Tensor: fp32 logits, shape (...).
        """
        if offsets.shape[-1] != self.dim:
            raise ValueError(f'FixedNormLogits(dim={self.dim}) got offsets of shape '
                             f'{tuple(offsets.shape)}')
        return self.forward_norm(offsets.float().norm(dim=-1))

    def extra_repr(self) -> str:
        return f'dim={self.dim}, sign={self.sign!r}, mu={self.mu:.5f}, s={self.s:.5f}'


@MODELS.register_module()
class BatchNormLogits(nn.Module):
    """NAE-style BatchNorm logits (Table 9 ablation): ``logit = +-BN1d(||x_o||)``.

    Args:
        dim (int): dimension of the offset embedding (checked only). Defaults to 128.
        sign (str): ``'neg'`` or ``'pos'``. Defaults to ``'neg'``.
    """

    def __init__(self, dim: int = 128, sign: str = 'neg'):
        super().__init__()
        self.dim = dim
        self.sign = sign
        self._factor = _check_sign(sign)
        self.bn = nn.BatchNorm1d(1)

    def forward_norm(self, norms: Tensor) -> Tensor:
        """Logits from precomputed norms of any shape (statistics over all entries)."""
        flat = norms.float().reshape(-1, 1)
        if self.training and flat.shape[0] <= 1:
            # BatchNorm cannot estimate a variance from one value: use running stats.
            out = nn.functional.batch_norm(flat, self.bn.running_mean, self.bn.running_var,
                                           self.bn.weight, self.bn.bias, False, 0.0,
                                           self.bn.eps)
        else:
            with torch.autocast(device_type=flat.device.type, enabled=False):
                out = self.bn(flat)
        return self._factor * out.reshape(norms.shape)

    def forward(self, offsets: Tensor) -> Tensor:
        """Logits of offset embeddings ``(..., d)`` -> ``(...)``."""
        if offsets.shape[-1] != self.dim:
            raise ValueError(f'BatchNormLogits(dim={self.dim}) got offsets of shape '
                             f'{tuple(offsets.shape)}')
        return self.forward_norm(offsets.float().norm(dim=-1))
