# Copyright (c) mmpsearch contributors. All rights reserved.
"""OIMNetRoIHead: label/IoU plumbing into ProtoNorm and LOIM, losses, inference outputs."""
import copy
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_overlaps
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmpsearch.models.necks import KEY_BACKGROUND, KEY_SINGLETON, ProtoNorm1d, ProtoNorm2d
from mmpsearch.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def tiny_model_cfg(norm='PN', loss='LOIMLoss', shared_head_norm='BN'):
    """The R50-C4 base config shrunk for CPU tests: ResNet-18 C4, few RoIs, no weights."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/models/oimnet_r50-c4.py')).model
    cfg.backbone.update(depth=18, init_cfg=None)
    cfg.rpn_head.update(in_channels=256, feat_channels=64)
    rh = cfg.roi_head
    rh.shared_head.update(depth=18, init_cfg=None)
    rh.shared_head_norm = shared_head_norm
    rh.bbox_roi_extractor.out_channels = 256
    rh.bbox_roi_extractor.roi_layer.output_size = 6
    rh.bbox_head.in_channels = 512
    rh.reid_head.update(in_channels=512, out_channels=16, norm=norm)
    rh.reid_loss.update(type=loss, num_person_ids=4, queue_size=6, feat_dim=16)
    cfg.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=30)
    cfg.train_cfg.rcnn.sampler.num = 16
    cfg.test_cfg.rpn.update(nms_pre=200, max_per_img=20)
    return cfg


def make_samples(num_imgs=2, h=96, w=128, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(num_imgs):
        s = DetDataSample()
        s.set_metainfo(dict(img_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                            ori_shape=(round(h / scale), round(w / scale)),
                            scale_factor=(scale, scale), img_path=f'img{i}.jpg'))
        boxes = torch.tensor([[10., 10., 40., 80.], [50., 12., 80., 90.], [90., 5., 120., 70.]])
        boxes += torch.rand(3, 4, generator=g) * 4
        gt = InstanceData()
        gt.bboxes = boxes
        gt.labels = torch.zeros(3, dtype=torch.long)
        gt.person_labels = torch.tensor([i, 3, -1])
        gt.known = torch.tensor([True, True, False])
        gt.person_ids = torch.tensor([10 + i, 13, -1])
        s.gt_instances = gt
        q = InstanceData()
        q.bboxes = boxes[:1]
        q.person_ids = torch.tensor([10 + i])
        q.query_idx = torch.tensor([i])
        s.query_instances = q
        samples.append(s)
    return torch.randn(num_imgs, 3, h, w, generator=g), samples


@pytest.mark.parametrize('norm,loss,shn', [('none', 'OIMLoss', 'BN'), ('BN', 'OIMLoss', 'BN'),
                                           ('PN', 'LOIMLoss', 'BN'), ('PN', 'LOIMLoss', 'PN')])
def test_losses_finite_and_backward(norm, loss, shn):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(norm, loss, shn))
    model.init_weights()
    model.train()
    inputs, samples = make_samples()
    # The first step meets empty memories (zero re-id gradient); the second one does not.
    model.loss(inputs, copy.deepcopy(samples))
    losses = model.loss(inputs, samples)
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_reid'):
        assert key in losses
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v) for k, v in losses.items()
                if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    head = model.roi_head
    assert head.reid_head.fc.weight.grad.abs().sum() > 0
    assert head.reid_loss.lut[[0, 1, 3]].abs().sum(1).gt(0).all()  # labelled ids written
    assert head.reid_loss.lut[2].abs().sum() == 0  # id 2 never appears
    assert int(head.reid_loss.queue_ptr) > 0  # the unlabelled persons were enqueued
    num_pn2d = sum(isinstance(m, ProtoNorm2d) for m in head.shared_head.modules())
    assert num_pn2d == (5 if shn == 'PN' else 0)  # ResNet-18 layer4: 2 x 2 + downsample


def test_reid_inputs_follow_the_sampled_rois(monkeypatch):
    """Foreground RoIs reach the loss with their matched GT's LUT row, known flag and max IoU;
    ProtoNorm sees all sampled RoIs with background and unlabelled keys (spec §1.4, §3.4)."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg('PN', 'LOIMLoss'))
    model.train()
    inputs, samples = make_samples()
    seen = {}
    head = model.roi_head
    orig_loss, orig_pn = head.reid_loss.forward, ProtoNorm1d.forward

    def spy_loss(emb, labels, known, ious=None):
        seen.update(emb=emb, labels=labels, known=known, ious=ious)
        return orig_loss(emb, labels, known, ious)

    def spy_pn(self, x, keys=None):
        seen['keys'] = keys
        return orig_pn(self, x, keys)

    orig_sample = head.bbox_sampler.sample

    def spy_sample(assign_result, pred_instances, gt_instances, **kw):
        res = orig_sample(assign_result, pred_instances, gt_instances, **kw)
        seen.setdefault('results', []).append((res, gt_instances))
        return res

    monkeypatch.setattr(head.reid_loss, 'forward', spy_loss)
    monkeypatch.setattr(ProtoNorm1d, 'forward', spy_pn)
    monkeypatch.setattr(head.bbox_sampler, 'sample', spy_sample)
    model.loss(inputs, samples)
    want_labels, want_known, want_ious, keys = [], [], [], []
    for res, gt in seen['results']:
        iou = bbox_overlaps(res.pos_priors, gt.bboxes)
        best = iou.argmax(1)
        assert torch.equal(best, res.pos_assigned_gt_inds)
        want_labels.append(torch.where(gt.known[best], gt.person_labels[best], -1))
        want_known.append(gt.known[best])
        want_ious.append(iou.max(1).values)
        k = torch.where(gt.known[best], gt.person_labels[best], KEY_SINGLETON)
        keys.append(torch.cat([k, torch.full((res.neg_inds.numel(), ), KEY_BACKGROUND)]))
    known = torch.cat(want_known)
    assert torch.equal(seen['known'], known)
    assert torch.equal(seen['labels'][known], torch.cat(want_labels)[known])
    torch.testing.assert_close(seen['ious'], torch.cat(want_ious))
    assert torch.equal(seen['keys'], torch.cat(keys))
    assert seen['emb'].shape == (known.numel(), 16)


def test_predict_boxes_embeddings_and_rescale():
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg('PN', 'LOIMLoss', 'PN'))
    model.eval()
    head = model.roi_head
    # A box head that calls every proposal a person (score ~1) and does not move it.
    torch.nn.init.zeros_(head.bbox_head.fc_cls.weight)
    head.bbox_head.fc_cls.bias.data = torch.tensor([10., -10.])
    torch.nn.init.zeros_(head.bbox_head.fc_reg.weight)
    torch.nn.init.zeros_(head.bbox_head.fc_reg.bias)
    inputs, samples = make_samples(num_imgs=1, scale=2.0)
    proposals = torch.tensor([[10., 10., 40., 80.], [11., 10., 41., 80.], [60., 10., 90., 80.]])
    samples[0].proposals = InstanceData(bboxes=proposals.clone())
    with torch.no_grad():
        out = model.predict(inputs, copy.deepcopy(samples))[0]
        feats = model.extract_feat(inputs)
        want_emb = head.predict_box_embeddings(feats, [proposals])[0]
    pred = out.pred_instances
    # NMS 0.4 drops the second proposal (IoU 0.94 with the first); boxes back to original px.
    torch.testing.assert_close(pred.bboxes, proposals[[0, 2]] / 2.0)
    torch.testing.assert_close(pred.embeddings, want_emb[[0, 2]])
    torch.testing.assert_close(pred.embeddings.norm(dim=1), torch.ones(2))
    assert pred.scores.gt(0.5).all() and pred.labels.eq(0).all()
    assert out.gt_embeddings.shape == (3, 16) and out.query_embeddings.shape == (1, 16)
    torch.testing.assert_close(out.query_embeddings, out.gt_embeddings[:1])
    # Low scores: nothing survives the 0.5 threshold, embeddings stay (0, D).
    head.bbox_head.fc_cls.bias.data = torch.tensor([-10., 10.])
    with torch.no_grad():
        out = model.predict(inputs, copy.deepcopy(samples))[0]
    assert out.pred_instances.bboxes.shape == (0, 4)
    assert out.pred_instances.embeddings.shape == (0, 16)


def test_missing_person_labels_is_a_clear_error():
    model = MODELS.build(tiny_model_cfg())
    model.train()
    inputs, samples = make_samples(num_imgs=1)
    del samples[0].gt_instances.person_labels
    with pytest.raises(KeyError, match='person_labels'):
        model.loss(inputs, samples)


def test_identity_without_lut_row_is_unlabelled():
    """A box with an identity but no lookup-table row (PRW's 483/932 under OIMNet++'s label
    map) reaches the loss as unlabelled (queue), even if a data source flags it known."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg('PN', 'OIMLoss'))
    model.init_weights()
    model.train()
    inputs, samples = make_samples()
    for s in samples:
        s.gt_instances.person_labels = torch.tensor([0, -1, -1])
        s.gt_instances.known = torch.tensor([True, True, False])  # box 1: pid 483
    seen = {}
    orig = model.roi_head.reid_loss.forward

    def spy(emb, labels, known, ious=None):
        seen.update(labels=labels.clone(), known=known.clone())
        return orig(emb, labels, known, ious)

    model.roi_head.reid_loss.forward = spy
    losses = model.loss(inputs, samples)
    assert torch.isfinite(losses['loss_reid'])
    assert not (seen['known'] & (seen['labels'] < 0)).any()
    assert int(model.roi_head.reid_loss.queue_ptr) > 0
