# Copyright (c) mmpsearch contributors. All rights reserved.
"""Per-group NMS (QC inference, spnet.md §6.2 step 4) against mmcv's NMS run per group."""
import torch
from mmcv.ops import nms

from mmpsearch.models.layers import grouped_nms


def _random_boxes(n, seed, scale=1900.):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand((n, 2), generator=g) * scale
    wh = torch.rand((n, 2), generator=g) * 120 + 5
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g)


def _per_group_reference(boxes, scores, groups, thr, cap=None):
    out = []
    for gid in groups.unique().tolist():
        idx = (groups == gid).nonzero().squeeze(1)
        keep = nms(boxes[idx], scores[idx], thr)[1]
        out.append(idx[keep[:cap]])
    return torch.cat(out)


def test_matches_mmcv_nms_run_per_group():
    boxes, scores = _random_boxes(3000, 0)
    groups = torch.randint(0, 40, (3000,), generator=torch.Generator().manual_seed(1))
    for cap in (None, 7):
        ours = grouped_nms(boxes, scores, groups, 0.5, cap)
        ref = _per_group_reference(boxes, scores, groups, 0.5, cap)
        assert sorted(ours.tolist()) == sorted(ref.tolist())


def test_a_group_does_not_depend_on_the_other_groups():
    """Thousands of far-apart queries in one call: mmcv's offset trick loses precision
    there, the grouped NMS gives every query the result it gets on its own."""
    boxes, scores = _random_boxes(60, 2)
    alone = grouped_nms(boxes, scores, torch.zeros(60, dtype=torch.long), 0.5)
    many_boxes, many_scores = _random_boxes(2000 * 20, 3)
    many_groups = torch.arange(1, 2001).repeat_interleave(20)
    all_boxes = torch.cat([many_boxes, boxes])
    all_scores = torch.cat([many_scores, scores])
    all_groups = torch.cat([many_groups, torch.zeros(60, dtype=torch.long)])
    keep = grouped_nms(all_boxes, all_scores, all_groups, 0.5)
    mine = keep[keep >= 40000] - 40000
    assert mine.tolist() == alone.tolist()


def test_order_cap_and_empty_input():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60.]])
    scores = torch.tensor([0.9, 0.8, 0.95, 0.1])
    groups = torch.tensor([1, 0, 1, 1])
    keep = grouped_nms(boxes, scores, groups, 0.5)
    # group 0: box 1; group 1: box 2 suppresses box 0, box 3 stays
    assert keep.tolist() == [1, 2, 3]
    assert grouped_nms(boxes, scores, groups, 0.5, max_per_group=1).tolist() == [1, 2]
    empty = grouped_nms(boxes[:0], scores[:0], groups[:0], 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.long
