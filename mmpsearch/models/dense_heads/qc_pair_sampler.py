# Copyright (c) mmpsearch contributors. All rights reserved.
"""Query-image pair sampling and anchor selection of QC training (spnet.md §4.4).

QC training pairs every query box ``j`` of the batch with images ``i`` of the batch and asks
the detector to find person ``j`` in image ``i``. With ``Q`` queries and ``N`` images:

* ``inst[i, j]``: the identity of query j is annotated in image i;
* ``self[i, j]``: query j is a box of image i;
* ``other = inst & ~self`` (another image or view shows the person), ``neg = ~inst``.

``algo1`` (supplement Sec. 8) draws up to ``num_pairs`` (32) pairs for the whole batch:
random *other* pairs first, then random *self* pairs, then random *neg* pairs.

For every selected pair the loss keeps ``num_anchors`` (64) anchors: for positive pairs the
32 with the highest GIoU to the target box plus 32 hard anchors among the 64 nearest ones
(smallest ``||x_q - x_a||``) not chosen yet; for negative pairs the 64 nearest anchors.
The released code de-duplicates the hard candidates with a sorted ``unique`` and so keeps
the 32 *lowest anchor indices* among them (``hard_order='index'``, §11.9); the paper's
intent, the 32 nearest, is ``hard_order='distance'``.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from mmpsearch.registry import TASK_UTILS

__all__ = ['QCPairSampler', 'PAIR_OTHER', 'PAIR_SELF', 'PAIR_NEG']

PAIR_OTHER, PAIR_SELF, PAIR_NEG = 0, 1, 2


@TASK_UTILS.register_module()
class QCPairSampler:
    """``algo1`` pair sampling and the per-pair anchor selection.

    Args:
        num_pairs (int): pairs per batch (``subsample_per_query``). Defaults to 32.
        num_anchors (int): anchors per pair (``subsample_per_image`` in QC). Defaults to 64.
        num_top_giou (int): anchors taken by GIoU in a positive pair. Defaults to half of
            ``num_anchors``.
        hard_order (str): ``'index'`` (released) or ``'distance'`` (paper), see above.
        match_mode (str): only ``'algo1'`` (the paper's QC configs) is implemented.
    """

    def __init__(self,
                 num_pairs: int = 32,
                 num_anchors: int = 64,
                 num_top_giou: Optional[int] = None,
                 hard_order: str = 'index',
                 match_mode: str = 'algo1'):
        if match_mode != 'algo1':
            raise ValueError(f"QCPairSampler: match_mode {match_mode!r} is not implemented; "
                             "the paper's QC configs use 'algo1'")
        if hard_order not in ('index', 'distance'):
            raise ValueError(f"QCPairSampler: hard_order must be 'index' (released) or "
                             f"'distance' (paper), got {hard_order!r}")
        self.num_pairs = num_pairs
        self.num_anchors = num_anchors
        self.num_top_giou = num_anchors // 2 if num_top_giou is None else num_top_giou
        self.hard_order = hard_order

    @staticmethod
    def pair_masks(query_keys: Tensor, query_imgs: Tensor, box_keys: Tensor, box_imgs: Tensor,
                   num_images: int) -> Tuple[Tensor, Tensor]:
        """Identity-presence and self masks.

        Args:
            query_keys (Tensor): (Q,) identity key of each query.
            query_imgs (Tensor): (Q,) image index of each query.
            box_keys (Tensor): (G,) identity key of every box of the batch.
            box_imgs (Tensor): (G,) image index of every box.
            num_images (int): N.

        Returns:
            tuple[Tensor, Tensor]: ``inst`` and ``self``, bool (N, Q).
        """
        present = torch.zeros(num_images, query_keys.numel(), dtype=torch.bool,
                              device=query_keys.device)
        same = box_keys[:, None] == query_keys[None, :]  # (G, Q)
        for i in range(num_images):
            present[i] = same[box_imgs == i].any(dim=0)
        is_self = query_imgs[None, :] == torch.arange(num_images, device=query_imgs.device)[:, None]
        return present | is_self, is_self

    def sample_pairs(self, inst: Tensor, is_self: Tensor,
                     exclude: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``algo1``: other -> self -> negative, up to ``num_pairs`` pairs.

        Args:
            inst (Tensor): (N, Q) bool, identity of query j present in image i.
            is_self (Tensor): (N, Q) bool, query j lies in image i.
            exclude (Tensor, optional): (N, Q) bool, pairs that may not be used at all
                (e.g. an unlabelled query against another view of its own image).

        Returns:
            tuple[Tensor, Tensor]: ``pairs`` (P, 2) long ``[image, query]`` and ``kinds``
            (P,) long (``PAIR_OTHER``, ``PAIR_SELF``, ``PAIR_NEG``), in that order.
        """
        allowed = torch.ones_like(inst) if exclude is None else ~exclude
        pools = (inst & ~is_self & allowed, is_self & allowed, ~inst & allowed)
        pairs, kinds, left = [], [], self.num_pairs
        for kind, pool in enumerate(pools):
            if left <= 0:
                break
            cand = pool.nonzero()
            if cand.numel() == 0:
                continue
            cand = cand[torch.randperm(cand.shape[0], device=cand.device)[:left]]
            pairs.append(cand)
            kinds.append(torch.full((cand.shape[0],), kind, dtype=torch.long,
                                    device=cand.device))
            left -= cand.shape[0]
        if not pairs:
            empty = inst.new_zeros((0, 2), dtype=torch.long)
            return empty, inst.new_zeros((0,), dtype=torch.long)
        return torch.cat(pairs), torch.cat(kinds)

    def select_anchors(self, distances: Tensor, gious: Optional[Tensor]) -> Tensor:
        """Anchors kept for one pair.

        Args:
            distances (Tensor): (K,) ``||x_q - x_a||`` of every anchor of the image.
            gious (Tensor, optional): (K,) GIoU of every anchor with the target box;
                ``None`` for a negative pair.

        Returns:
            Tensor: anchor indices (<= ``num_anchors``,), long.
        """
        num = min(self.num_anchors, distances.numel())
        with torch.no_grad():
            nearest = distances.topk(num, largest=False).indices
            if gious is None:
                return nearest
            top = gious.topk(min(self.num_top_giou, gious.numel())).indices
            taken = torch.zeros_like(distances, dtype=torch.bool)
            taken[top] = True
            hard = nearest[~taken[nearest]]  # nearest-first order
            if self.hard_order == 'index':
                hard = hard.sort().values
            return torch.cat([top, hard[:max(0, num - top.numel())]])
