# Copyright (c) mmpsearch contributors. All rights reserved.
"""ProtoNorm (OIMNet++ Eq. 5-6; spec oimnetpp.md §2): BatchNorm whose mean is the mean of
per-identity *prototypes* instead of the mean of all rows, so that dominant identities do not
bias the statistics of a long-tailed batch.

Training forward on X (R rows; for 2-D inputs each row is a C x H x W map)::

    p_k  = mean of the rows of prototype k            (Eq. 5)
    mu   = mean_k p_k   (and over H, W for 2-D)       (Eq. 6, left)
    var  = mean over all R rows (and H, W) of (X - mu)^2   (Eq. 6, right; biased)
    Y    = (X - mu) / sqrt(var + eps)   [* weight + bias if affine]
    running_mean <- (1 - m) running_mean + m mu;  running_var <- (1 - m) running_var +
                    m var n / (n - 1),  n = R (x H x W), m = 0.1

Evaluation uses the running statistics only. Which rows form prototypes is given per row by a
*prototype key* (:func:`prototype_keys`): a labelled identity's LUT row (>= 0, rows with the
same key form one prototype), :data:`KEY_BACKGROUND` (all such rows form one prototype),
:data:`KEY_SINGLETON` (each row is its own prototype) or :data:`KEY_EXCLUDED` (the row is in the
variance but in no prototype). Under data parallelism the statistics are reduced over ranks
(SyncBN-style, with gradients), so every rank gets the statistics of the whole batch.
"""
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from mmengine import dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmpsearch.registry import MODELS
from ..losses.dist_utils import differentiable_all_reduce_sum, gather_rows

KEY_SINGLETON = -1  # each row its own prototype (released: unlabelled persons)
KEY_BACKGROUND = -2  # all rows one prototype (released: background RoIs)
KEY_EXCLUDED = -3  # no prototype, only in the variance (paper: every non-labelled row)
ID_MODES = ('released', 'paper')


def prototype_keys(person_labels: Tensor,
                   known: Tensor,
                   foreground: Tensor,
                   id_mode: str = 'released') -> Tensor:
    """Prototype key of every RoI (spec oimnetpp.md §0.1, §2.2, §8 row 1).

    Args:
        person_labels (Tensor): (R,) int64 LUT row of labelled RoIs (ignored elsewhere).
        known (Tensor): (R,) bool, RoI matched to a labelled identity.
        foreground (Tensor): (R,) bool, RoI matched to any person (labelled or not).
        id_mode (str): ``'released'`` (default): labelled identities, plus all background
            RoIs as one prototype and every unlabelled-person RoI as its own prototype.
            ``'paper'``: labelled identities only (y in 1..L of Eq. 5); the other rows only
            enter the variance.

    Returns:
        Tensor: (R,) int64 keys.
    """
    if id_mode not in ID_MODES:
        raise ValueError(f'ProtoNorm id_mode must be one of {ID_MODES}, got {id_mode!r}')
    # A row without a LUT row is unlabelled whatever its flag says (known follows the
    # label map, docs/datasets.md).
    known = known.bool() & foreground.bool() & (person_labels >= 0)
    keys = torch.where(known, person_labels.long(), torch.full_like(person_labels.long(),
                                                                     KEY_EXCLUDED))
    if id_mode == 'released':
        keys[~foreground.bool()] = KEY_BACKGROUND
        keys[foreground.bool() & ~known] = KEY_SINGLETON
    return keys


class _ProtoNorm(_BatchNorm):
    """Shared implementation of :class:`ProtoNorm1d` and :class:`ProtoNorm2d`.

    Subclassing ``_BatchNorm`` keeps the buffer/parameter names of BatchNorm (checkpoints
    convert both ways) and lets mmengine treat it as a norm layer (e.g. ``norm_decay_mult``).
    Do not run ``SyncBatchNorm.convert_sync_batchnorm`` over a model with ProtoNorm: it would
    replace it by a plain SyncBN; ProtoNorm reduces its statistics across ranks itself.

    Args:
        num_features (int): Channels C.
        eps (float): Added to the variance. Defaults to 1e-5.
        momentum (float): Running-statistics momentum. Defaults to 0.1.
        affine (bool): Learnable scale and shift. Defaults to False (ProtoNorm followed by L2
            normalisation, where they would cancel; paper footnote 1).
        sync_across_ranks (bool): Reduce statistics over ranks. Defaults to True (no-op when
            not distributed).
    """

    def __init__(self,
                 num_features: int,
                 eps: float = 1e-5,
                 momentum: float = 0.1,
                 affine: bool = False,
                 sync_across_ranks: bool = True) -> None:
        if momentum is None or not 0.0 <= momentum <= 1.0:
            raise ValueError(f'{type(self).__name__}: momentum must be in [0, 1], got '
                             f'{momentum}')
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=True)
        self.sync_across_ranks = sync_across_ranks
        self._keys: Optional[Tensor] = None

    # -------------------------------------------------------------- label registration
    def set_prototype_keys(self, keys: Optional[Tensor]) -> None:
        """Register the (R,) prototype keys of the next training inputs (None clears)."""
        self._keys = keys

    def forward(self, x: Tensor, keys: Optional[Tensor] = None) -> Tensor:
        """Normalise ``x``.

        Args:
            x (Tensor): (R, C) for 1-D, (R, C, H, W) for 2-D.
            keys (Tensor, optional): (R,) prototype keys; defaults to the registered ones.
                Required in training mode, unused in eval mode.

        Returns:
            Tensor: Same shape as ``x``.
        """
        self._check_input_dim(x)
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                self.bias, False, 0.0, self.eps)
        keys = keys if keys is not None else self._keys
        if keys is None:
            raise RuntimeError(f'{type(self).__name__} in training mode needs the prototype '
                               'keys of its input rows (pass keys= or use prototype_keys_of)')
        if keys.shape != (x.shape[0], ):
            raise ValueError(f'{type(self).__name__}: {x.shape[0]} input rows but keys of '
                             f'shape {tuple(keys.shape)}')
        mean, var, n = self._prototype_stats(x, keys.to(x.device).long())
        with torch.no_grad():
            unbiased = var * (n / (n - 1)) if n > 1 else var  # n <= 1: spec §2.4 guard
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased.detach())
            self.num_batches_tracked.add_(1)
        shape = (1, -1) + (1, ) * (x.dim() - 2)
        # float32 arithmetic (AMP hands in float16), result in the input's dtype.
        y = (x.float() - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape).float() + self.bias.view(shape).float()
        return y.to(x.dtype)

    def _prototype_stats(self, x: Tensor, keys: Tensor):
        """Prototype mean and biased variance (Eq. 5-6), reduced over ranks.

        Returns:
            tuple: mean (C,) and var (C,) in float32, n (int): elements per channel.
        """
        xf = x.float()
        c = x.shape[1]
        rows = xf.reshape(x.shape[0], c, -1)  # (R, C, HW)
        hw = rows.shape[2]
        row_mean = rows.mean(2)  # (R, C): for 2-D, the prototype mean is spatially averaged
        sync = self.sync_across_ranks and dist.get_world_size() > 1
        # Shared prototypes (labelled ids and background) are indexed by the union of keys
        # over ranks, so the same identity on two ranks forms one prototype.
        all_keys = gather_rows([keys])[0] if sync else keys
        shared = torch.unique(all_keys[(all_keys >= 0) | (all_keys == KEY_BACKGROUND)])
        k_shared = shared.numel()
        is_shared = (keys >= 0) | (keys == KEY_BACKGROUND)
        slot = torch.searchsorted(shared, keys[is_shared])
        sums = row_mean.new_zeros(k_shared, c).index_add(0, slot, row_mean[is_shared])
        counts = row_mean.new_zeros(k_shared).index_add(
            0, slot, row_mean.new_ones(int(is_shared.sum())))
        single = keys == KEY_SINGLETON
        single_sum = row_mean[single].sum(0)
        num_single = row_mean.new_tensor(float(single.sum()))
        num_rows = row_mean.new_tensor(float(x.shape[0]))
        if sync:
            packed = differentiable_all_reduce_sum(torch.cat([sums.flatten(), single_sum]))
            sums, single_sum = packed[:-c].view(k_shared, c), packed[-c:]
            counts, num_single, num_rows = differentiable_all_reduce_sum(
                torch.cat([counts, num_single[None], num_rows[None]]).detach()).split(
                    [k_shared, 1, 1])
            num_single, num_rows = num_single[0], num_rows[0]
        num_protos = k_shared + num_single
        if num_protos > 0:
            mean = ((sums / counts[:, None]).sum(0) + single_sum) / num_protos
        else:
            # No prototype at all (possible only with id_mode='paper' and no labelled row):
            # fall back to the plain batch mean, i.e. BatchNorm.
            total = row_mean.sum(0)
            mean = (differentiable_all_reduce_sum(total) if sync else total) / num_rows
        sq = ((rows - mean[None, :, None])**2).sum((0, 2))
        if sync:
            sq = differentiable_all_reduce_sum(sq)
        n = int(num_rows.item()) * hw
        var = sq / n
        return mean, var, n


@MODELS.register_module()
class ProtoNorm1d(_ProtoNorm):
    """ProtoNorm over (R, C) embeddings, e.g. before L2 normalisation (spec oimnetpp.md §1.7).

    See :class:`_ProtoNorm` for the arguments.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() != 2:
            raise ValueError(f'ProtoNorm1d expects (R, C) input, got {tuple(x.shape)}')


@MODELS.register_module()
class ProtoNorm2d(_ProtoNorm):
    """ProtoNorm over (R, C, H, W) RoI feature maps, for OIMNet+++ (spec oimnetpp.md §2.6).

    A prototype is the mean of an identity's RoI maps; the mean is taken over prototypes and
    spatial positions, the variance over all rows and positions (n = R * H * W). Affine by
    default, initialised from the BatchNorm it replaces (:meth:`from_batchnorm`).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, sync_across_ranks: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, sync_across_ranks)

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f'ProtoNorm2d expects (R, C, H, W) input, got {tuple(x.shape)}')

    @classmethod
    def from_batchnorm(cls, bn: _BatchNorm, sync_across_ranks: bool = True) -> 'ProtoNorm2d':
        """A ProtoNorm2d with the eps, momentum, affine parameters and running statistics of
        ``bn`` (spec §2.6: OIMNet+++ starts from the ImageNet BN of conv5)."""
        pn = cls(bn.num_features, eps=bn.eps, momentum=0.1 if bn.momentum is None else
                 bn.momentum, affine=True, sync_across_ranks=sync_across_ranks)
        with torch.no_grad():
            if bn.affine:
                pn.weight.copy_(bn.weight)
                pn.bias.copy_(bn.bias)
            if bn.track_running_stats and bn.running_mean is not None:
                pn.running_mean.copy_(bn.running_mean)
                pn.running_var.copy_(bn.running_var)
                pn.num_batches_tracked.copy_(bn.num_batches_tracked)
            if bn.affine:  # keep frozen parameters frozen
                pn.weight.requires_grad_(bn.weight.requires_grad)
                pn.bias.requires_grad_(bn.bias.requires_grad)
        return pn.to(bn.running_mean.device if bn.running_mean is not None else 'cpu')


def convert_batchnorm_to_protonorm(module: nn.Module, sync_across_ranks: bool = True) -> int:
    """Replace every ``BatchNorm2d``/``SyncBatchNorm`` inside ``module`` by :class:`ProtoNorm2d`
    in place (ProtoNorm reduces its statistics across ranks itself).

    Args:
        module (nn.Module): E.g. the conv5 ``ResLayer`` of the RoI head (10 BN layers for
            ResNet-50 layer4: 3 per bottleneck plus the downsample BN).
        sync_across_ranks (bool): Passed to every new layer.

    Returns:
        int: The number of layers replaced.
    """
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.BatchNorm2d, nn.SyncBatchNorm)):
            setattr(module, name, ProtoNorm2d.from_batchnorm(child, sync_across_ranks))
            count += 1
        else:
            count += convert_batchnorm_to_protonorm(child, sync_across_ranks)
    return count


@contextmanager
def prototype_keys_of(module: nn.Module, keys: Tensor) -> Iterator[int]:
    """Register ``keys`` with every ProtoNorm layer inside ``module`` for the duration of the
    block (the conv5 layers of OIMNet+++ are called without extra arguments).

    Yields:
        int: The number of ProtoNorm layers found.
    """
    layers = [m for m in module.modules() if isinstance(m, _ProtoNorm)]
    for m in layers:
        m.set_prototype_keys(keys)
    try:
        yield len(layers)
    finally:
        for m in layers:
            m.set_prototype_keys(None)
