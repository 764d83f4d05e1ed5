# Copyright (c) mmpsearch contributors. All rights reserved.
"""The prototype-queue re-id loss of SPNet pre-training (spnet.md §4.6, ``reid_objective:
cq``, released ``OIMLossCQ``).

Pre-training data has no identity labels beyond "this box in both views": on COCOPersons
every annotation is its own identity. The loss is an InfoNCE over *instance prototypes*
kept in a queue:

1. for each identity of the loss batch, a prototype = the L2-normalised mean of the
   *teacher* (EMA) embeddings of all its samples (GT boxes of both views and detected boxes
   with IoU >= 0.7);
2. the prototypes are enqueued (FIFO, ``queue_size`` = 65,536 slots); an identity already in
   the queue loses its old slot, so every identity holds at most one slot;
3. every student embedding (L2-normalised) gets ``logits = scale * cos(x, valid slots)``
   (scale 10, i.e. temperature 0.1) and a cross-entropy against its own identity's slot,
   which exists because it was just enqueued; mean over samples.

Queue, slot identities and pointer are buffers (checkpointed and resumed exactly). Under
data parallelism the teacher embeddings and identities of all ranks are gathered in rank
order before the prototypes are formed, so every rank enqueues the same prototypes in the
same order and holds the same queue (and an identity seen by two ranks gets one prototype).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpsearch.registry import MODELS
from .dist_utils import gather_rows

__all__ = ['PrototypeQueueLoss']


@MODELS.register_module()
class PrototypeQueueLoss(nn.Module):
    """InfoNCE against a queue of per-identity teacher prototypes (spnet.md §4.6).

    The call signature matches :class:`OIMLoss` (``embeddings, labels, known, ious``) plus
    ``teacher_embeddings``, so :class:`ReidRoIHead` can use either.

    Args:
        queue_size (int): S, slots of the queue. Defaults to 65,536.
        feat_dim (int): D, embedding dimension.
        scale (float): logit scale (1 / temperature). Defaults to 10.
        loss_weight (float): multiplier of the returned loss. Defaults to 1.
        sync_across_ranks (bool): gather the samples of every rank before enqueueing, so
            all ranks hold the same queue. Defaults to True (no-op when not distributed).
    """

    #: :class:`ReidRoIHead` passes the teacher's embeddings of the same RoIs.
    uses_teacher = True

    def __init__(self,
                 queue_size: int = 65536,
                 feat_dim: int = 128,
                 scale: float = 10.0,
                 loss_weight: float = 1.0,
                 *,
                 sync_across_ranks: bool = True) -> None:
        super().__init__()
        if queue_size < 1 or feat_dim < 1:
            raise ValueError('PrototypeQueueLoss: need queue_size >= 1 and feat_dim >= 1, '
                             f'got {queue_size} and {feat_dim}')
        self.queue_size, self.feat_dim = int(queue_size), int(feat_dim)
        self.scale, self.loss_weight = float(scale), float(loss_weight)
        self.sync_across_ranks = sync_across_ranks
        self.register_buffer('queue', torch.zeros(queue_size, feat_dim))
        # identity held by each slot, -1 = empty or invalidated by a re-enqueue
        self.register_buffer('queue_ids', torch.full((queue_size, ), -1, dtype=torch.long))
        self.register_buffer('queue_ptr', torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ queue
    @staticmethod
    def prototypes(embeddings: Tensor, labels: Tensor) -> Tuple[Tensor, Tensor]:
        """L2-normalised mean embedding of each identity.

        Args:
            embeddings (Tensor): (N, D) teacher embeddings, averaged as the re-id head
                outputs them; only the mean is normalised (§4.6 step 1, docs/pretraining.md).
            labels (Tensor): (N,) identity of each row.

        Returns:
            tuple[Tensor, Tensor]: the sorted unique identities (P,) and their
            prototypes (P, D).
        """
        ids, inverse = torch.unique(labels, sorted=True, return_inverse=True)
        sums = embeddings.new_zeros((ids.numel(), embeddings.shape[1]))
        sums.index_add_(0, inverse, embeddings)
        counts = torch.bincount(inverse, minlength=ids.numel()).to(sums.dtype)
        return ids, F.normalize(sums / counts[:, None], dim=1)

    @torch.no_grad()
    def enqueue(self, ids: Tensor, prototypes: Tensor) -> None:
        """Write ``prototypes`` (P, D) for identities ``ids`` (P,) at the pointer (FIFO).

        Slots already holding one of ``ids`` are invalidated first; the pointer wraps.
        """
        num = ids.numel()
        if num == 0:
            return
        if num > self.queue_size:
            raise ValueError(f'PrototypeQueueLoss: {num} identities in one batch exceed '
                             f'the queue of {self.queue_size} slots')
        self.queue_ids[torch.isin(self.queue_ids, ids)] = -1
        slots = (self.queue_ptr + torch.arange(num, device=ids.device)) % self.queue_size
        self.queue[slots] = prototypes.to(self.queue.dtype)
        self.queue_ids[slots] = ids
        self.queue_ptr.copy_((self.queue_ptr + num) % self.queue_size)

    # ------------------------------------------------------------------ loss
    def forward(self,
                embeddings: Tensor,
                labels: Tensor,
                known: Optional[Tensor] = None,
                ious: Optional[Tensor] = None,
                teacher_embeddings: Optional[Tensor] = None) -> Tensor:
        """Enqueue this batch's prototypes, then the InfoNCE of the student embeddings.

        Args:
            embeddings (Tensor): (N, D) student re-id embeddings (not yet normalised).
            labels (Tensor): (N,) identity of each sample; rows with ``known`` False or a
                negative label are left out (they have no identity to contrast).
            known (Tensor, optional): (N,) bool.
            ious (Tensor, optional): unused (OIM/LOIM signature).
            teacher_embeddings (Tensor, optional): (N, D) EMA-teacher embeddings of the
                same RoIs; without a teacher the detached student embeddings are used.

        Returns:
            Tensor: scalar loss, mean over the kept samples (0 with a graph if none).
        """
        keep = labels >= 0
        if known is not None:
            keep &= known.bool()
        x = embeddings[keep]
        y = labels[keep].long()
        teacher = embeddings if teacher_embeddings is None else teacher_embeddings
        t = teacher[keep].detach().float()
        if self.sync_across_ranks:
            t, y_all = gather_rows([t, y])
        else:
            y_all = y
        if y_all.numel():
            self.enqueue(*self.prototypes(t, y_all))
        if x.shape[0] == 0:
            return embeddings.sum() * 0.
        valid = self.queue_ids >= 0
        bank, bank_ids = self.queue[valid], self.queue_ids[valid]
        logits = self.scale * F.normalize(x.float(), dim=1) @ bank.t()  # (N, V)
        # each identity holds exactly one valid slot: its column is the target
        target = (y[:, None] == bank_ids[None, :]).float().argmax(dim=1)
        return self.loss_weight * F.cross_entropy(logits, target)

    def extra_repr(self) -> str:
        return (f'queue_size={self.queue_size}, feat_dim={self.feat_dim}, '
                f'scale={self.scale}')
