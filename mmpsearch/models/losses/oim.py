# Copyright (c) mmpsearch contributors. All rights reserved.
"""Online Instance Matching losses: OIM (OIMNet, SPNet) and LOIM (OIMNet++).

One base class owns the memories, a lookup table (LUT, one row per labelled identity) and a
circular queue of unlabelled-person features, as registered buffers so that checkpoints and
resumed runs carry them. Subclasses change only the LUT update weight:

* :class:`OIMLoss`: ``v <- normalize(m * v + (1 - m) * x)``, m = 0.5 (paper Eq. 4; spec
  oimnetpp.md §3.4 "OIM", spnet.md §4.6).
* :class:`LOIMLoss`: ``v <- normalize((1 - c) * v + c * x)``, c = clip(IoU, lower, 1 - eps)
  (paper Eq. 7-8; spec oimnetpp.md §3.4 "LOIM").

Order of operations, as in both released codes: the logits and their gradient use the
memories *before* this iteration's update; then the samples of the whole batch (of every rank,
in rank order) update the memories one after the other.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpsearch.registry import MODELS
from .dist_utils import gather_rows

_REDUCTIONS = ('oimnetpp', 'spnet')


@MODELS.register_module()
class OIMLoss(nn.Module):
    """OIM loss with a lookup table and a circular queue (spec oimnetpp.md §3, spnet.md §4.6).

    ``logits = scale * x @ [LUT; queue]^T`` and cross-entropy against the sample's LUT row, for
    labelled samples only. Unlabelled persons never contribute to the loss; they are pushed
    into the queue (FIFO at the head pointer) and serve as negatives.

    Two reductions (``reduction``):

    * ``'oimnetpp'`` (OIMNet++, default): mean over the labelled samples. A batch without a
      labelled sample gives a zero loss (the released code produced NaN here, spec §3.3).
    * ``'spnet'`` (SPNet's ``OIMLossSafe``, spec spnet.md §4.6): cross-entropy summed over
      the labelled samples and divided by the number of *all* samples (unlabelled included).
      Never-filled (all-zero) LUT/queue rows get cosine -1, except the sample's own
      never-filled LUT row, which gets +1.

    Args:
        num_person_ids (int): L, rows of the LUT (labelled identities).
        queue_size (int): Q, rows of the circular queue.
        feat_dim (int): D, embedding dimension.
        scale (float): Logit scale, 1/temperature. Defaults to 30.
        momentum (float): OIM momentum eta of Eq. 4 (weight of the old LUT row).
            Defaults to 0.5. Unused by :class:`LOIMLoss`.
        loss_weight (float): Multiplier of the returned loss. Defaults to 1.
        reduction (str): ``'oimnetpp'`` or ``'spnet'``. Defaults to ``'oimnetpp'``.
        sync_across_ranks (bool): All-gather the samples of every rank before the memory
            update so that all ranks hold identical memories. Defaults to True (a no-op when
            not distributed).
    """

    def __init__(self,
                 num_person_ids: int,
                 queue_size: int,
                 feat_dim: int,
                 scale: float = 30.0,
                 momentum: float = 0.5,
                 loss_weight: float = 1.0,
                 reduction: str = 'oimnetpp',
                 *,
                 sync_across_ranks: bool = True,
                 **kw) -> None:
        super().__init__()
        if kw:
            raise TypeError(f'{type(self).__name__} got unknown arguments {sorted(kw)}')
        if reduction not in _REDUCTIONS:
            raise ValueError(f'{type(self).__name__}: reduction must be one of {_REDUCTIONS}, '
                             f'got {reduction!r}')
        if num_person_ids < 1 or queue_size < 0 or feat_dim < 1:
            raise ValueError(f'{type(self).__name__}: need num_person_ids >= 1, queue_size >= '
                             f'0, feat_dim >= 1; got {num_person_ids}, {queue_size}, {feat_dim}')
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f'{type(self).__name__}: momentum must be in [0, 1), got {momentum}')
        self.num_person_ids = int(num_person_ids)
        self.queue_size = int(queue_size)
        self.feat_dim = int(feat_dim)
        self.scale = float(scale)
        self.momentum = float(momentum)
        self.loss_weight = float(loss_weight)
        self.reduction = reduction
        self.sync_across_ranks = sync_across_ranks
        # float32 memories (the OIMNet++ release keeps float16 ones; spec §3.1 recommends 32).
        self.register_buffer('lut', torch.zeros(self.num_person_ids, self.feat_dim))
        self.register_buffer('queue', torch.zeros(self.queue_size, self.feat_dim))
        self.register_buffer('queue_ptr', torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ forward
    def forward(self,
                embeddings: Tensor,
                person_labels: Tensor,
                known: Tensor,
                ious: Optional[Tensor] = None) -> Tensor:
        """Compute the loss, then (in training mode) update the memories.

        Args:
            embeddings (Tensor): (N, D) foreground samples (the caller drops background);
                L2-normalised here (a no-op, value and gradient, on unit inputs).
            person_labels (Tensor): (N,) int64 LUT row in ``0..L-1`` of labelled samples;
                ignored (conventionally -1) where ``known`` is False.
            known (Tensor): (N,) bool, True for labelled identities.
            ious (Tensor, optional): (N,) IoU of each sample with its matched GT box. Used
                by :class:`LOIMLoss` only.

        Returns:
            Tensor: Scalar loss (times ``loss_weight``).
        """
        x, labels, known, ious = self._check_inputs(embeddings, person_labels, known, ious)
        # torch.cat copies the buffers: autograd saves the copy for the backward, so the
        # in-place update below cannot change the gradient (it uses the old memories).
        memories = torch.cat([self.lut, self.queue], dim=0)
        # float32 logits and cross-entropy even under AMP autocast.
        with torch.autocast(device_type=x.device.type, enabled=False):
            sim = x @ memories.t()  # (N, L + Q) cosine similarities
            if self.reduction == 'spnet':
                sim = self._mask_never_filled(sim, labels, known)
            logits = self.scale * sim
            loss = self._reduce(logits, labels, known)
        if self.training:
            self.update_memories(x.detach(), labels, known, ious)
        return self.loss_weight * loss

    def _check_inputs(self, embeddings: Tensor, person_labels: Tensor, known: Tensor,
                      ious: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
        name = type(self).__name__
        if embeddings.dim() != 2 or embeddings.shape[1] != self.feat_dim:
            raise ValueError(f'{name}: embeddings must be (N, {self.feat_dim}), '
                             f'got {tuple(embeddings.shape)}')
        n = embeddings.shape[0]
        if person_labels.shape != (n, ) or known.shape != (n, ):
            raise ValueError(f'{name}: person_labels and known must be ({n},), got '
                             f'{tuple(person_labels.shape)} and {tuple(known.shape)}')
        if ious is not None and ious.shape != (n, ):
            raise ValueError(f'{name}: ious must be ({n},), got {tuple(ious.shape)}')
        known = known.bool()
        labels = person_labels.long()
        bad = known & ((labels < 0) | (labels >= self.num_person_ids))
        if bool(bad.any()):
            raise ValueError(f'{name}: labelled samples need person_labels in '
                             f'[0, {self.num_person_ids}), got {labels[bad].unique().tolist()}')
        labels = torch.where(known, labels, torch.full_like(labels, -1))
        # The memories are float32; AMP may hand in float16 embeddings.
        x = F.normalize(embeddings.float(), dim=1)
        return x, labels, known, (None if ious is None else ious.float())

    def _mask_never_filled(self, sim: Tensor, labels: Tensor, known: Tensor) -> Tensor:
        """SPNet's ``OIMLossSafe`` masking (spec spnet.md §4.6)."""
        empty = torch.cat([self.lut.abs().sum(1) == 0, self.queue.abs().sum(1) == 0])
        sim = sim.masked_fill(empty[None], -1.0)
        own = known.clone()
        own[known] = empty[labels[known]]
        rows = own.nonzero(as_tuple=True)[0]
        if rows.numel():
            sim = sim.index_put((rows, labels[rows]), sim.new_ones(rows.numel()))
        return sim

    def _reduce(self, logits: Tensor, labels: Tensor, known: Tensor) -> Tensor:
        num_known = int(known.sum())
        if num_known == 0:
            # Zero, but connected to the graph so DDP sees every parameter used.
            return logits.sum() * 0.0
        ce = F.cross_entropy(logits[known], labels[known], reduction='sum')
        if self.reduction == 'oimnetpp':
            return ce / num_known
        return ce / logits.shape[0]  # 'spnet': divided by all samples, unlabelled included

    # ------------------------------------------------------------------ memory update
    def update_weights(self, ious: Optional[Tensor], num: int) -> Tensor:
        """Weight ``w`` of the new sample in ``v <- normalize((1 - w) v + w x)``.

        OIM: ``w = 1 - momentum`` (Eq. 4). Subclasses override only this.

        Args:
            ious (Tensor, optional): (num,) IoUs of the labelled samples, or None.
            num (int): Number of labelled samples.

        Returns:
            Tensor: (num,) float32 weights.
        """
        return torch.full((num, ), 1.0 - self.momentum, device=self.lut.device)

    @torch.no_grad()
    def update_memories(self, x: Tensor, labels: Tensor, known: Tensor,
                        ious: Optional[Tensor] = None) -> None:
        """Update LUT and queue with the samples of all ranks, as a sequential loop would.

        Equivalent to, for each sample in (rank, row) order: labelled -> ``LUT[y] <-
        normalize((1 - w) LUT[y] + w x)``; unlabelled -> ``queue[ptr] <- x, ptr += 1 mod Q``.
        It is vectorised without changing the result: different identities are independent, so
        round k updates the k-th occurrence of every identity at once (as many rounds as the
        largest repeat count); queue writes land on distinct slots except when more than Q
        samples arrive, where only the last Q survive the loop and only those are written.

        Args:
            x (Tensor): (N, D) L2-normalised embeddings of this rank.
            labels (Tensor): (N,) LUT rows, -1 for unlabelled.
            known (Tensor): (N,) bool.
            ious (Tensor, optional): (N,) IoUs.
        """
        has_iou = ious is not None
        if self.sync_across_ranks:
            ious_in = ious if has_iou else x.new_zeros(x.shape[0])
            x, labels, known, ious_in = gather_rows([x, labels, known, ious_in])
            ious = ious_in if has_iou else None
        x = x.to(self.lut.dtype)
        self._update_lut(x[known], labels[known], None if ious is None else ious[known])
        self._push_queue(x[~known])

    def _update_lut(self, x: Tensor, labels: Tensor, ious: Optional[Tensor]) -> None:
        if labels.numel() == 0:
            return
        w = self.update_weights(ious, labels.numel()).to(x)
        # Occurrence index of each sample among the samples of its identity (stable order).
        order = torch.sort(labels, stable=True)[1]
        sorted_labels = labels[order]
        first = torch.searchsorted(sorted_labels, sorted_labels)  # first index of its run
        rank_sorted = torch.arange(labels.numel(), device=labels.device) - first
        occurrence = torch.empty_like(rank_sorted)
        occurrence[order] = rank_sorted
        for k in range(int(occurrence.max()) + 1):
            sel = occurrence == k  # at most one sample per identity in this round
            rows = labels[sel]
            wk = w[sel, None]
            self.lut[rows] = F.normalize((1 - wk) * self.lut[rows] + wk * x[sel], dim=1)

    def _push_queue(self, x: Tensor) -> None:
        n, q = x.shape[0], self.queue_size
        if n == 0 or q == 0:
            return
        ptr = int(self.queue_ptr)
        slots = (ptr + torch.arange(n, device=x.device)) % q
        keep = slice(max(0, n - q), n)  # later writes overwrite earlier ones on the same slot
        self.queue[slots[keep]] = x[keep]
        self.queue_ptr.fill_((ptr + n) % q)

    def extra_repr(self) -> str:
        return (f'num_person_ids={self.num_person_ids}, queue_size={self.queue_size}, '
                f'feat_dim={self.feat_dim}, scale={self.scale}, reduction={self.reduction!r}')


@MODELS.register_module()
class LOIMLoss(OIMLoss):
    """Localization-aware OIM (OIMNet++ Eq. 7-8; spec oimnetpp.md §3.4).

    The LUT row of a labelled sample is updated with ``v <- normalize((1 - c) v + c x)``,
    ``c = clip(IoU, iou_lower, 1 - eps)``: better-aligned proposals move the LUT more. The
    loss itself is the plain OIM cross-entropy (no IoU weighting); ``momentum`` is unused.

    Args:
        iou_lower (float): Lower clip bound. 0.7 as released (default); 0.0 is the paper's
            Eq. 8. Positives have IoU >= 0.5, so with 0.7 every positive below 0.7 gets 0.7.
        eps (float): Upper clip bound is ``1 - eps``. Defaults to 0.1.
        **kwargs: :class:`OIMLoss` arguments.
    """

    def __init__(self, *args, iou_lower: float = 0.7, eps: float = 0.1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 <= iou_lower <= 1.0 - eps <= 1.0:
            raise ValueError(f'LOIMLoss: need 0 <= iou_lower <= 1 - eps <= 1, got '
                             f'iou_lower={iou_lower}, eps={eps}')
        self.iou_lower = float(iou_lower)
        self.eps = float(eps)

    def forward(self, embeddings: Tensor, person_labels: Tensor, known: Tensor,
                ious: Optional[Tensor] = None) -> Tensor:
        if ious is None and self.training:
            raise ValueError('LOIMLoss needs the IoU of each sample with its matched GT box '
                             '(ious=None was given)')
        return super().forward(embeddings, person_labels, known, ious)

    def update_weights(self, ious: Optional[Tensor], num: int) -> Tensor:
        """``c = clip(IoU, iou_lower, 1 - eps)`` per labelled sample (Eq. 8)."""
        return ious.float().clamp(self.iou_lower, 1.0 - self.eps)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', iou_lower={self.iou_lower}, eps={self.eps}'
