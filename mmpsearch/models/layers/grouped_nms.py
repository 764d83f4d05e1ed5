# Copyright (c) mmpsearch contributors. All rights reserved.
"""Greedy NMS run independently inside each group, vectorised over the groups.

QC inference (spnet.md §6.2 step 4) runs NMS "separately per query": on PRW one gallery
image is searched by ~2,000 queries at once, each with up to 100 candidate boxes. mmcv's
``batched_nms`` offsets each group's boxes by ``group * (max_coord + 1)`` and runs one
NMS: with thousands of groups the offsets reach millions of pixels, where float32 keeps
only a fraction of a pixel, so a query's IoUs (and its kept boxes) would depend on which
other queries share the batch; above 10,000 boxes it falls back to a Python loop over
groups. Here each group's boxes are laid out in a padded (G, K, 4) block and the
suppression runs over the K positions for all groups at once: no cross-group arithmetic,
no loop over groups, and a group's result depends on its own boxes only.

The rule is mmcv's ``nms`` (IoU with ``offset=0``; a box is dropped when its IoU with a
kept, higher-scoring box of its group is ``> iou_thr``); equal scores keep their input
order (stable sort).
"""
from typing import Optional

import torch
from torch import Tensor

__all__ = ['grouped_nms']


def grouped_nms(boxes: Tensor,
                scores: Tensor,
                groups: Tensor,
                iou_thr: float,
                max_per_group: Optional[int] = None) -> Tensor:
    """Indices of the boxes kept by per-group greedy NMS.

    Args:
        boxes (Tensor): (N, 4) xyxy boxes.
        scores (Tensor): (N,) scores (higher first).
        groups (Tensor): (N,) int group of each box (e.g. the query index).
        iou_thr (float): suppress boxes whose IoU with a kept box is above this.
        max_per_group (int, optional): keep at most this many boxes per group.

    Returns:
        Tensor: (M,) int64 indices into the inputs, ordered by group, then by
        decreasing score (stable) within a group.
    """
    n = boxes.shape[0]
    device = boxes.device
    if n == 0:
        return torch.zeros((0,), dtype=torch.long, device=device)
    # order: by group, then score descending (ties: input order)
    by_score = torch.sort(scores.float(), descending=True, stable=True).indices
    by_group = torch.sort(groups[by_score], stable=True).indices
    order = by_score[by_group]
    g_sorted = groups[order]
    uniq, counts = torch.unique_consecutive(g_sorted, return_counts=True)
    num_groups, width = uniq.numel(), int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    group_pos = torch.repeat_interleave(torch.arange(num_groups, device=device), counts)
    slot = torch.arange(n, device=device) - starts[group_pos]

    padded = boxes.new_zeros((num_groups, width, 4), dtype=torch.float)
    padded[group_pos, slot] = boxes[order].float()
    keep = torch.zeros((num_groups, width), dtype=torch.bool, device=device)
    keep[group_pos, slot] = True
    # blocks of groups bound the (G, K, K) IoU tensor to ~4M entries
    block = max(1, (1 << 22) // (width * width))
    for a in range(0, num_groups, block):
        keep[a:a + block] = _suppress(padded[a:a + block], keep[a:a + block], iou_thr)
    if max_per_group is not None:
        keep &= torch.cumsum(keep.long(), dim=1) <= max_per_group
    kept = keep[group_pos, slot]
    return order[kept]


def _suppress(padded: Tensor, valid: Tensor, iou_thr: float) -> Tensor:
    """Greedy suppression of score-sorted, padded groups.

    Args:
        padded (Tensor): (G, K, 4) boxes, each row sorted by decreasing score.
        valid (Tensor): (G, K) bool, False on padding.
        iou_thr (float): IoU above which a lower-scoring box is dropped.

    Returns:
        Tensor: (G, K) bool kept boxes.
    """
    # pairwise IoU inside each group, as mmcv computes it (offset 0)
    x1, y1, x2, y2 = padded.unbind(-1)
    area = (x2 - x1) * (y2 - y1)
    w = (torch.minimum(x2[:, :, None], x2[:, None, :]) -
         torch.maximum(x1[:, :, None], x1[:, None, :])).clamp(min=0)
    h = (torch.minimum(y2[:, :, None], y2[:, None, :]) -
         torch.maximum(y1[:, :, None], y1[:, None, :])).clamp(min=0)
    inter = w * h
    overlap = inter / (area[:, :, None] + area[:, None, :] - inter) > iou_thr
    keep = valid.clone()
    for i in range(padded.shape[1] - 1):
        # box i is final once every higher-scoring box of its group was processed
        keep[:, i + 1:] &= ~(keep[:, i:i + 1] & overlap[:, i, i + 1:])
    return keep
