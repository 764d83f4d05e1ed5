# Copyright (c) mmpsearch contributors. All rights reserved.
"""Swap-path head, stage 0: embeddings, OC/QC losses and inference (spnet.md §3.3, §4.3,
§4.4, §6)."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData

from mmpsearch.models.dense_heads import SwapPathHead
from mmpsearch.registry import MODELS

ASSIGNER = dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0.,
                match_low_quality=True, iou_calculator=dict(type='mmdet.BboxOverlaps2D'))
SAMPLER = dict(type='mmdet.RandomSampler', num=128, pos_fraction=0.5, neg_pos_ub=-1,
               add_gt_as_proposals=False)


def _head(dim=16, channels=8, **kw):
    head = MODELS.build(dict(type='SwapPathHead', in_channels=channels, embed_dim=dim,
                             train_cfg=dict(assigner=ASSIGNER, sampler=SAMPLER,
                                            qc=dict(num_pairs=6, num_anchors=8)),
                             test_cfg=dict(), **kw))
    head.init_weights()
    return head


def _feats(n=2, h=128, w=128, channels=8):
    sizes = [(h // 8, w // 8), (h // 16, w // 16), (h // 32, w // 32)]
    for _ in range(2):
        sizes.append(((sizes[-1][0] - 1) // 2 + 1, (sizes[-1][1] - 1) // 2 + 1))
    return [torch.randn(n, channels, *s) for s in sizes]


def _gt(boxes, pids, labels=None, known=None):
    boxes = torch.tensor(boxes, dtype=torch.float).reshape(-1, 4)
    n = len(boxes)
    return InstanceData(bboxes=boxes, labels=torch.zeros(n, dtype=torch.long),
                        person_ids=torch.tensor(pids),
                        person_labels=torch.tensor(labels if labels else list(range(n))),
                        known=torch.tensor(known if known else [True] * n))


def test_embedding_layout_and_init():
    head = _head()
    assert isinstance(head, SwapPathHead)
    assert head.embed_conv.bias.detach().allclose(
        torch.full((9 * 16,), -math.log(99.0)))  # -4.595
    assert float(head.embed_conv.weight.std()) == pytest.approx(0.01, rel=0.1)
    feats = _feats()
    x_a = head(feats)
    sizes = [f.shape[-2:] for f in feats]
    assert x_a.shape == (2, sum(h * w for h, w in sizes) * 9, 16)
    # Location-major, anchor-minor: row (y * W + x) * A + a of level 0 is channel block a.
    raw = head.embed_conv(feats[0])
    w0 = sizes[0][1]
    for (y, x, a) in [(0, 0, 0), (1, 2, 5), (3, 7, 8)]:
        assert torch.equal(x_a[1, (y * w0 + x) * 9 + a], raw[1, a * 16:(a + 1) * 16, y, x])
    # At init x_a ~ -4.595 * 1, ||x_o|| >> mu: every OC logit is very negative (§3.3).
    logits = head.logits(head.bridge(x_a))
    assert float(logits.max()) < -5


def test_512_input_has_49104_anchors():
    fpn = MODELS.build(dict(type='mmdet.FPN', in_channels=[4, 4, 4], out_channels=8,
                            add_extra_convs='on_input', relu_before_extra_convs=True,
                            num_outs=5))
    head = _head()
    c = [torch.rand(1, 4, 512 // s, 512 // s) for s in (8, 16, 32)]
    feats = fpn(c)
    assert head(feats).shape[1] == 49104
    assert head.anchors(feats, (512, 512)).shape == (49104, 4)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_anchors_are_float32_for_reduced_precision_maps(dtype):
    """Under AMP the maps are float16/bfloat16; the anchors stay exact float32 (in bfloat16
    a corner near 1500 px would move in 8-px steps)."""
    head = _head()
    feats = _feats(h=1504, w=1504, channels=8)
    want = head.anchors(feats, (1504, 1504))
    got = head.anchors([f.to(dtype) for f in feats], (1504, 1504))
    assert got.dtype == torch.float32 and torch.equal(got, want)


def test_dense_focal_loss_matches_reference():
    head = _head()
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(500, generator=gen) * 3
    labels = torch.randint(-1, 2, (500,), generator=gen)
    loss = head.dense_cls_loss(logits, labels)
    # torchvision.ops.sigmoid_focal_loss(alpha=0.5, gamma=1, 'sum') / max(1, #pos).
    keep = labels >= 0
    x, t = logits[keep], (labels[keep] == 1).float()
    p = x.sigmoid()
    ce = F.binary_cross_entropy_with_logits(x, t, reduction='none')
    p_t = p * t + (1 - p) * (1 - t)
    ref = (0.5 * t + 0.5 * (1 - t)) * ce * (1 - p_t)
    assert float(loss) == pytest.approx(float(ref.sum() / (labels == 1).sum()), rel=1e-5)


def test_loss_oc_rows_and_regression():
    torch.manual_seed(0)
    head = _head()
    feats = _feats()
    x_a = head(feats)
    anchors = head.anchors(feats, (128, 128))
    gts = [_gt([[10, 10, 50, 90], [60, 20, 100, 110]], [1, 2]), _gt([[30, 30, 70, 70]], [3])]
    losses, rows = head.loss_oc(x_a, anchors, gts)
    assert set(losses) == {'loss_anchor_cls', 'loss_bbox0'}
    assert all(torch.isfinite(v) for v in losses.values())
    for i, gt in enumerate(gts):
        r = rows[rows.img_inds == i]
        assert len(r) <= 128 and int(r.is_pos.sum()) <= 64
        ious = bbox_overlaps(anchors[r.anchor_inds], gt.bboxes)
        pos = r.is_pos
        assert bool(pos.any())
        # Positives: IoU >= 0.5 with their target or a GT's best anchor (low quality).
        best = ious.max(dim=0).values
        target_iou = bbox_overlaps(anchors[r.anchor_inds[pos]], r.target_bboxes[pos],
                                   is_aligned=True)
        assert bool(((target_iou >= 0.5) | (target_iou >= best.min() - 1e-6)).all())
        assert bool((ious[~pos].max(dim=1).values < 0.4).all())
    # GIoU loss = mean of 1 - GIoU over positives, recomputed independently.
    giou = bbox_overlaps(rows.bboxes[rows.is_pos], rows.target_bboxes[rows.is_pos],
                         mode='giou', is_aligned=True)
    assert float(losses['loss_bbox0']) == pytest.approx(float((1 - giou).mean()), rel=1e-4)
    sum(losses.values()).backward()
    assert head.embed_conv.weight.grad is not None and head.reg_head.mlp[0].weight.grad is not None


def test_loss_oc_image_without_gt():
    head = _head()
    feats = _feats(n=1)
    losses, rows = head.loss_oc(head(feats), head.anchors(feats, (128, 128)),
                                [_gt(torch.zeros(0, 4).tolist(), [])])
    assert float(losses['loss_bbox0']) == 0.0 and not bool(rows.valid.any())


def test_predict_oc_keeps_close_anchors():
    head = _head()
    head.test_cfg.update(pre_topk=1000, score_thr=0.5, topk=300, nms_iou=0.5, max_per_img=300)
    feats = _feats(n=1)
    anchors = head.anchors(feats, (128, 128))
    x_a = torch.full((1, anchors.shape[0], 16), 10.0)  # ||x_o|| = 40 >> mu(16) ~ 3.9
    near = torch.tensor([5, 700, 2000])
    x_a[0, near] = 0.1  # ||x_o|| = 0.4 -> p ~ 1
    res = head.predict_oc(x_a, anchors, [dict(img_shape=(100, 120))])[0]
    assert 1 <= len(res) <= 3 and bool((res.scores > 0.5).all())
    assert bool((res.bboxes[:, 0::2] <= 120).all() and (res.bboxes[:, 1::2] <= 100).all())
    assert bool((res.bboxes >= 0).all())


def test_qc_queries_dedup_and_keys():
    gts = [_gt([[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 9, 9]], [7, 7, 8]),
           _gt([[0, 0, 10, 10], [2, 2, 30, 30]], [8, -1], known=[True, False])]
    metas = [dict(img_id='a'), dict(img_id='a')]
    queries, groups = SwapPathHead.qc_queries(gts, metas)
    # Identity 7 occurs twice in image 0: both boxes are dropped (§4.4.1).
    assert queries.img_inds.tolist() == [0, 1, 1]
    assert queries.id_keys[0] == queries.id_keys[1]          # pid 8 in both views
    assert queries.fallback.tolist() == [False, False, True]
    assert groups.tolist() == [0, 0]
    # With instance ids the unlabelled person keeps its identity across views.
    gts[0] = _gt([[0, 0, 10, 10], [2, 2, 30, 30]], [8, -1], known=[True, False])
    for gt in gts:
        gt.instance_ids = torch.tensor([0, 1])
    queries, _ = SwapPathHead.qc_queries(gts, metas)
    assert queries.id_keys[1] == queries.id_keys[3] and not bool(queries.fallback.any())


def test_loss_qc_and_predict_qc():
    torch.manual_seed(0)
    head = _head()
    feats = _feats(n=4)
    x_a = head(feats)
    anchors = head.anchors(feats, (128, 128))
    boxes = [[10, 10, 50, 90], [60, 20, 100, 110]]
    gts = [_gt(boxes, [1, 2]), _gt(boxes, [1, 2]), _gt(boxes, [3, 4]),
           _gt(boxes, [3, -1], known=[True, False])]
    metas = [dict(img_id='x'), dict(img_id='x'), dict(img_id='y'), dict(img_id='y')]
    queries, groups = head.qc_queries(gts, metas)
    x_q = torch.randn(len(queries), 16, requires_grad=True)
    losses, rows = head.loss_qc(x_a, anchors, x_q, queries, groups)
    assert all(torch.isfinite(v) for v in losses.values())
    assert rows.groups.unique().numel() == 6  # num_pairs
    assert int((rows.groups == 0).sum()) == 8  # num_anchors per pair
    sum(losses.values()).backward()
    assert x_q.grad is not None and float(x_q.grad.abs().sum()) > 0
    # Rows of a positive pair target the query person's box in the paired image.
    for g in rows.groups[rows.valid].unique().tolist():
        r = rows[rows.groups == g]
        j, i = int(r.query_inds[0]), int(r.img_inds[0])
        same = (queries.img_inds == i) & (queries.id_keys == queries.id_keys[j])
        assert torch.equal(r.target_bboxes[0], queries.bboxes[same][0])
    head.test_cfg.update(qc_topk=20, score_thr=-1.0)  # keep every candidate
    res = head.predict_qc(x_a.detach(), anchors, [x_q.detach()[:3], x_q.detach()[3:4]],
                          [dict(img_shape=(128, 128))] * 2)
    assert set(res[0].groups.tolist()) <= {0, 1, 2} and set(res[1].groups.tolist()) <= {0}
