# Copyright (c) mmpsearch contributors. All rights reserved.
"""Cascade stages 1..C (spnet.md §3.8, §4.5, §6.1 step 6)."""
import pytest
import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData

from mmpsearch.models.roi_heads import SwapPathCascade
from mmpsearch.registry import MODELS

TRAIN = dict(
    assigner=dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                  min_pos_iou=0.5, match_low_quality=False,
                  iou_calculator=dict(type='mmdet.BboxOverlaps2D')),
    sampler=dict(type='mmdet.RandomSampler', num=16, pos_fraction=0.5, neg_pos_ub=-1,
                 add_gt_as_proposals=True))


class _Embed:
    """Records the stages asked for and returns a learnable embedding per RoI."""

    def __init__(self, dim=8):
        self.calls = []
        self.weight = torch.randn(4, dim, requires_grad=True)

    def __call__(self, feats, rois, stage, targets=None):
        self.calls.append((stage, rois.shape[0]))
        if targets is not None:
            assert all(t.shape == (rois.shape[0],) for t in targets)
        return rois[:, 1:] / 100 @ self.weight


def _cascade(**kw):
    return MODELS.build(dict(type='SwapPathCascade', num_stages=2, embed_dim=8,
                             train_cfg=TRAIN, **kw))


def _gts():
    return [InstanceData(bboxes=torch.tensor([[10., 10., 50., 90.]]),
                         labels=torch.zeros(1, dtype=torch.long),
                         person_labels=torch.tensor([3]), known=torch.tensor([True])),
            InstanceData(bboxes=torch.tensor([[20., 20., 60., 60.], [70., 5., 120., 100.]]),
                         labels=torch.zeros(2, dtype=torch.long),
                         person_labels=torch.tensor([-1, 1]),
                         known=torch.tensor([False, True]))]


def test_loss_adds_gt_and_rematches():
    torch.manual_seed(0)
    cascade = _cascade()
    assert isinstance(cascade, SwapPathCascade) and len(cascade.bridges) == 2
    n = 40
    boxes = torch.rand(n, 4) * 60
    boxes[:, 2:] += boxes[:, :2] + 5
    rows = InstanceData(img_inds=torch.arange(n) % 2, bboxes=boxes.requires_grad_())
    embed = _Embed()
    metas = [dict(img_shape=(128, 128))] * 2
    losses, last = cascade.loss([], rows, _gts(), metas, embed)
    assert set(losses) == {'loss_cls1', 'loss_bbox1', 'loss_cls2', 'loss_bbox2'}
    assert [c[0] for c in embed.calls] == [1, 2]
    assert all(torch.isfinite(v) for v in losses.values())
    # GT boxes are proposals, so every image has positives; <= 16 rows, <= 8 positives.
    for i, gt in enumerate(_gts()):
        r = last[last.img_inds == i]
        assert 0 < int(r.is_pos.sum()) <= 8 and len(r) <= 16
        iou = bbox_overlaps(r.priors, r.target_bboxes, is_aligned=True)
        assert bool((iou[r.is_pos] >= 0.5).all())
        assert bool((bbox_overlaps(r.priors[~r.is_pos], gt.bboxes) < 0.5).all())
    sum(losses.values()).backward()
    assert rows.bboxes.grad is None  # previous-stage boxes are detached
    assert embed.weight.grad is not None


def test_bce_normalisation():
    cascade = _cascade()
    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    target = torch.tensor([0, 1, 1])  # one positive
    loss = cascade.loss_cls(logits, target, avg_factor=1)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, 0], torch.tensor([1., 0., 0.]), reduction='sum')
    assert float(loss) == pytest.approx(float(ref), rel=1e-6)


def test_predict_refines_and_keeps_groups():
    cascade = _cascade()
    embed = _Embed()
    results = [InstanceData(bboxes=torch.tensor([[10., 10., 50., 90.], [12., 10., 50., 92.]])),
               InstanceData(bboxes=torch.zeros(0, 4))]
    out = cascade.predict([], results, [dict(img_shape=(100, 100))] * 2, embed)
    assert len(out[0]) >= 1 and len(out[1]) == 0
    assert bool(((out[0].scores > 0) & (out[0].scores < 1)).all())
    assert torch.allclose(out[0].scores, out[0].logits.sigmoid())
    # QC: offsets x_q - x_a and NMS per query.
    results = [InstanceData(bboxes=torch.tensor([[10., 10., 50., 90.], [10., 10., 50., 90.]]),
                            groups=torch.tensor([0, 1]))]
    out = cascade.predict([], results, [dict(img_shape=(100, 100))], embed,
                          batch_query_embeds=[torch.randn(2, 8)])
    assert sorted(out[0].groups.tolist()) == [0, 1]
