# Copyright (c) mmpsearch contributors. All rights reserved.
"""Re-id / loc RoI heads and the re-id loss inputs (spnet.md §3.4, §4.6)."""
import pytest
import torch
from mmengine.structures import InstanceData

from mmpsearch.models.backbones import ConvNeXtTrunk
from mmpsearch.models.layers import SafeBatchNorm1d
from mmpsearch.models.roi_heads import ReidRoIHead
from mmpsearch.registry import MODELS

SMALL = dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64])


def _head(trunk, **kw):
    cfg = dict(type='ReidRoIHead',
               roi_extractor=dict(type='mmdet.SingleRoIExtractor',
                                  roi_layer=dict(type='RoIAlign', output_size=14,
                                                 sampling_ratio=2, aligned=False),
                                  out_channels=32, featmap_strides=[8]),
               reid_dim=16, loc_dim=16, stage4_factory=trunk.clone_stage4)
    cfg.update(kw)
    return MODELS.build(cfg)


def _feats():
    return [torch.randn(2, 32, 16, 16), torch.randn(2, 32, 8, 8)]


def test_shared_head_shapes_and_pooling():
    trunk = ConvNeXtTrunk(arch=SMALL, drop_path_rate=0.)
    head = _head(trunk)
    assert isinstance(head, ReidRoIHead) and head.shared
    head.sync_stage4(trunk.stage4_state_dict())
    head.eval()
    feats = _feats()
    rois = torch.tensor([[0, 0., 0., 64., 64.], [1, 8., 8., 40., 100.]])
    emb = head.reid_embed(feats, rois)
    assert emb.shape == (2, 16)
    assert torch.equal(head.loc_embed(feats, rois, 1), emb)  # shared: re-id head
    # Max-pooled RoI input and stage-4 output, independently recomputed.
    pooled = head.roi_extractor([feats[0]], rois)
    assert pooled.shape == (2, 32, 14, 14)
    res4, res5 = head.reid_stage(pooled)
    assert torch.equal(res4, pooled.flatten(2).max(dim=2).values)
    stage_out = trunk.stages[3](trunk.downsample_layers[3](pooled))
    assert torch.allclose(res5, stage_out.flatten(2).max(dim=2).values, atol=1e-6)
    # Two branches of d_r / 2, BN without affine parameters.
    assert [p.out_features for p in head.reid_proj.projs] == [8, 8]
    assert all(isinstance(n, SafeBatchNorm1d) and not n.affine for n in head.reid_proj.norms)
    assert float(head.reid_proj.projs[0].weight.std()) == pytest.approx(0.01, rel=0.2)
    out = head.predict(feats, [rois[:1, 1:], rois[1:, 1:]])
    assert torch.allclose(out[0].norm(dim=1), torch.ones(1))


def test_separate_loc_heads():
    trunk = ConvNeXtTrunk(arch=SMALL)
    head = _head(trunk, reid_dim=32, num_loc_heads=2)
    assert not head.shared and len(head.stage_copies()) == 3
    assert all(p.bias is None for p in head.loc_projs)
    feats = _feats()
    rois = torch.tensor([[0, 0., 0., 64., 64.]])
    assert head.reid_embed(feats, rois).shape == (1, 32)
    assert head.loc_embed(feats, rois, 2).shape == (1, 16)
    with pytest.raises(ValueError, match='loc heads'):
        head.loc_embed(feats, rois, 3)
    with pytest.raises(ValueError, match='reid_dim == loc_dim'):
        _head(trunk, reid_dim=32)


def test_safe_batchnorm_single_row():
    bn = SafeBatchNorm1d(4, affine=False)
    bn.train()
    x = torch.randn(1, 4)
    assert torch.allclose(bn(x), x / torch.sqrt(torch.tensor(1 + bn.eps)))
    assert torch.equal(bn.running_mean, torch.zeros(4))  # not updated
    assert bn(torch.zeros(0, 4)).shape == (0, 4)


def test_select_rows_iou_and_cap():
    trunk = ConvNeXtTrunk(arch=SMALL)
    head = _head(trunk, train_cfg=dict(max_per_group=2))
    target = torch.tensor([10., 10., 50., 50.])
    boxes = torch.tensor([[10., 10., 50., 50.], [11., 10., 50., 50.], [10., 12., 50., 50.],
                          [30., 30., 70., 70.], [-5., 10., 50., 50.], [10., 10., 50., 50.]])
    n = len(boxes)
    rows = InstanceData(img_inds=torch.zeros(n, dtype=torch.long),
                        groups=torch.tensor([0, 0, 0, 0, 1, 2]), bboxes=boxes,
                        target_bboxes=target.expand(n, 4), target_labels=torch.arange(n),
                        target_known=torch.ones(n, dtype=torch.bool),
                        valid=torch.tensor([True] * 5 + [False]),
                        is_pos=torch.ones(n, dtype=torch.bool))
    out = head.select_rows(rows, [dict(img_shape=(100, 100))])
    # Group 0: 3 rows with IoU >= 0.7 capped to 2; row 3 has IoU < 0.7; row 4 is clipped to
    # x1 = 0 (IoU 40 / 50 = 0.8 >= 0.7); row 5 has no target.
    assert int((out.groups == 0).sum()) == 2
    assert 4 in out.target_labels.tolist() and 3 not in out.target_labels.tolist()
    assert 5 not in out.target_labels.tolist()
    assert float(out.bboxes[out.target_labels == 4][0, 0]) == 0.0


def test_loss_with_oim():
    trunk = ConvNeXtTrunk(arch=SMALL)
    head = _head(trunk, loss_reid=dict(type='OIMLoss', num_person_ids=5, queue_size=4,
                                       feat_dim=16, reduction='spnet'))
    gts = [InstanceData(bboxes=torch.tensor([[0., 0., 40., 60.]]),
                        person_labels=torch.tensor([2]), known=torch.tensor([True])),
           InstanceData(bboxes=torch.tensor([[8., 8., 60., 90.], [0., 0., 30., 30.]]),
                        person_labels=torch.tensor([-1, 4]),
                        known=torch.tensor([False, True]))]
    rows = InstanceData(img_inds=torch.tensor([0, 1]), groups=torch.tensor([0, 1]),
                        bboxes=torch.tensor([[0., 0., 40., 61.], [50., 50., 60., 60.]]),
                        target_bboxes=torch.tensor([[0., 0., 40., 60.], [8., 8., 60., 90.]]),
                        target_labels=torch.tensor([2, -1]),
                        target_known=torch.tensor([True, False]),
                        valid=torch.tensor([True, True]), is_pos=torch.tensor([True, False]))
    feats = _feats()
    losses = head.loss(feats, rows, gts, [dict(img_shape=(128, 128))] * 2)
    assert set(losses) == {'loss_reid'} and torch.isfinite(losses['loss_reid'])
    # 1 detected row kept + 3 GT boxes went through the loss: LUT rows 2 and 4 filled,
    # one unlabelled feature queued.
    assert head.loss_reid.lut.abs().sum(1).nonzero().squeeze(1).tolist() == [2, 4]
    assert int(head.loss_reid.queue_ptr) == 1


def test_protonorm_gets_row_identities():
    trunk = ConvNeXtTrunk(arch=SMALL)
    head = _head(trunk, norm_cfg=dict(type='ProtoNorm1d', affine=False),
                 loss_reid=dict(type='LOIMLoss', num_person_ids=5, queue_size=4, feat_dim=16,
                                reduction='spnet'))
    head.train()
    feats = _feats()
    rois = torch.tensor([[0, 0., 0., 64., 64.], [1, 8., 8., 40., 100.]])
    with pytest.raises(RuntimeError, match='prototype'):
        head.reid_embed(feats, rois)  # training ProtoNorm without the row identities
    targets = (torch.tensor([1, -1]), torch.tensor([True, False]), torch.tensor([True, True]))
    assert head.loc_embed(feats, rois, 1, targets).shape == (2, 16)
    gts = [InstanceData(bboxes=torch.tensor([[0., 0., 40., 60.]]),
                        person_labels=torch.tensor([2]), known=torch.tensor([True])),
           InstanceData(bboxes=torch.tensor([[8., 8., 60., 90.]]),
                        person_labels=torch.tensor([-1]), known=torch.tensor([False]))]
    losses = head.loss(feats, None, gts, [dict(img_shape=(128, 128))] * 2)
    assert torch.isfinite(losses['loss_reid'])
