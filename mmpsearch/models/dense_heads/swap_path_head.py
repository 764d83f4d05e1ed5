# Copyright (c) mmpsearch contributors. All rights reserved.
"""The swap-path query head of SPNet, stage 0 (spnet.md §3.2-3.7, §4.3, §6.1).

One shared 3x3 conv turns every FPN level into a ``d``-dim *anchor embedding* ``x_a`` for
each of the A = 9 anchors of a location. Detection compares a query embedding ``x_q`` with
``x_a`` through the offset ``x_o = x_q - x_a``: the class logit is the parameter-free
FixedNorm of ``||x_o||`` and an MLP on ``x_o`` regresses the box. The *path* only changes
where ``x_q`` comes from:

* **OC** (object-centric): ``x_o = bridge(x_a) = (W x_a + b) - x_a`` (zero-init bridge);
* **QC** (query-centric): ``x_q`` is the loc embedding of a real query box
  (:class:`~.swap_path_qc.SwapPathQCMixin`).

Both paths use the same weights; the detector picks one from ``train_cfg.path`` /
``test_cfg.path``.

Rows handed to the cascade and the re-id loss are :class:`InstanceData` with ``img_inds``
(R,), ``bboxes`` (R, 4; decoded, with gradients), ``target_bboxes`` (R, 4),
``target_labels`` (R,; OIM LUT row or -1), ``target_known`` (R,), ``is_pos`` (R,),
``valid`` (R,; a target exists) and ``groups`` (R,; image in OC, pair in QC).
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
from mmcv.ops import nms
from mmengine.model import BaseModule, normal_init
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmpsearch.registry import MODELS, TASK_UTILS
from ..layers.grouped_nms import grouped_nms
from .swap_path_qc import SwapPathQCMixin

__all__ = ['SwapPathHead']

@MODELS.register_module()
class SwapPathHead(SwapPathQCMixin, BaseModule):
    """Anchor embeddings, OC/QC offsets, FixedNorm logits and box MLP of stage 0.

    Args:
        in_channels (int): FPN width C_f (384 for ConvNeXt-T, 512 for -B).
        embed_dim (int): loc embedding dimension d. Defaults to 128.
        anchor_generator (dict): :class:`SizedAnchorGenerator` config.
        bridge (dict): OC bridge config (:class:`OffsetBridge`).
        logits (dict): logits config (:class:`FixedNormLogits` or
            :class:`BatchNormLogits`); ``dim`` is filled in.
        reg_head (dict): box MLP config (:class:`BoxRegressionMLP`).
        bbox_coder (dict): mmdet ``DeltaXYWHBBoxCoder`` with unit weights.
        loss_cls (dict): dense focal loss (alpha 0.5, gamma 1).
        loss_bbox (dict): GIoU loss.
        prior_prob (float): prior probability of the conv bias init (0.01, §3.3).
        train_cfg (dict): ``assigner`` (0.5/0.4, low-quality), ``sampler`` (128 per
            image, 50% positives) and ``qc`` (:class:`QCPairSampler` config).
        test_cfg (dict): OC ``pre_topk`` (1000), ``score_thr`` (0.5), ``topk`` (300),
            ``nms_iou`` (0.5), ``max_per_img`` (300); QC ``qc_topk`` (100) and
            ``max_per_query`` (100, the cap of each query's detections).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 in_channels: int = 384,
                 embed_dim: int = 128,
                 anchor_generator: dict = dict(
                     type='SizedAnchorGenerator', strides=[8, 16, 32, 64, 128],
                     sizes=[[32, 40, 50], [64, 80, 101], [128, 161, 203],
                            [256, 322, 406], [512, 645, 812]],
                     ratios=[0.5, 1.0, 2.0]),
                 bridge: dict = dict(type='OffsetBridge', mode='combiner'),
                 logits: dict = dict(type='FixedNormLogits', sign='neg'),
                 reg_head: dict = dict(type='BoxRegressionMLP', num_hidden=4),
                 bbox_coder: dict = dict(type='mmdet.DeltaXYWHBBoxCoder',
                                         target_means=[0., 0., 0., 0.],
                                         target_stds=[1., 1., 1., 1.]),
                 loss_cls: dict = dict(type='mmdet.FocalLoss', use_sigmoid=True,
                                       gamma=1.0, alpha=0.5, loss_weight=1.0),
                 loss_bbox: dict = dict(type='mmdet.GIoULoss', eps=1e-7, loss_weight=1.0),
                 prior_prob: float = 0.01,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.embed_dim = embed_dim
        self.prior_prob = prior_prob
        self.prior_generator = TASK_UTILS.build(anchor_generator)
        self.num_anchors = self.prior_generator.num_base_priors[0]
        # §3.3: one 3x3 conv shared by all levels, no tower, no normalisation.
        self.embed_conv = nn.Conv2d(in_channels, self.num_anchors * embed_dim, 3, padding=1)
        self.bridge = MODELS.build(dict(bridge, dim=embed_dim))
        self.logits = MODELS.build(dict(logits, dim=embed_dim))
        self.reg_head = MODELS.build(dict(reg_head, dim=embed_dim))
        self.bbox_coder = TASK_UTILS.build(bbox_coder)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})
        if self.train_cfg:
            self.assigner = TASK_UTILS.build(self.train_cfg['assigner'])
            self.sampler = TASK_UTILS.build(self.train_cfg['sampler'])
            self.qc_sampler = TASK_UTILS.build(
                dict(type='QCPairSampler', **self.train_cfg.get('qc', {})))

    def init_weights(self) -> None:
        """N(0, 0.01) weights and the RetinaNet prior bias (-4.595) on all channels."""
        super().init_weights()
        # §3.3: RetinaNet's prior bias -log((1 - p) / p) on every embedding channel.
        bias = -math.log((1 - self.prior_prob) / self.prior_prob)
        normal_init(self.embed_conv, std=0.01, bias=bias)

    # ------------------------------------------------------------------ features
    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Anchor embeddings of all levels.

        Args:
            feats (Sequence[Tensor]): FPN maps P3..P7, each (N, C_f, H_l, W_l).

        Returns:
            Tensor: x_a, (N, sum_l H_l * W_l * A, d), location-major and anchor-minor
            within a level, levels concatenated (§3.3).
        """
        outs = []
        for feat in feats:
            emb = self.embed_conv(feat)
            n, _, h, w = emb.shape
            emb = emb.view(n, self.num_anchors, self.embed_dim, h, w)
            outs.append(emb.permute(0, 3, 4, 1, 2).reshape(n, -1, self.embed_dim))
        return torch.cat(outs, dim=1)

    def anchors(self, feats: Sequence[Tensor], batch_input_shape) -> Tensor:
        """All anchors of the (padded) batch input, (K, 4) xyxy, float32.

        float32 whatever the maps' dtype: under AMP the maps are float16/bfloat16, in which
        a corner near x = 1500 could only move in steps of 1 px (float16) or 8 px (bfloat16).
        """
        sizes = [f.shape[-2:] for f in feats]
        return torch.cat(self.prior_generator.grid_priors(
            sizes, dtype=torch.float32, device=feats[0].device,
            pad_shape=tuple(batch_input_shape)))

    def decode(self, priors: Tensor, deltas: Tensor) -> Tensor:
        """Boxes from deltas relative to ``priors`` (unit-weight (dx, dy, dw, dh))."""
        return self.bbox_coder.decode(priors, deltas.float())

    # ------------------------------------------------------------------ losses
    def dense_cls_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Dense focal loss over all non-ignored anchors (§4.3.3).

        Args:
            logits (Tensor): (M,) person logits.
            labels (Tensor): (M,) 1 foreground, 0 background, -1 ignored.

        Returns:
            Tensor: sum of the focal terms / max(1, #foreground).
        """
        keep = labels >= 0
        num_pos = int((labels == 1).sum())
        # mmdet's sigmoid focal loss takes class indices: 0 = person, 1 = background.
        target = torch.where(labels[keep] == 1, 0, 1)
        return self.loss_cls(logits[keep].float()[:, None], target,
                             avg_factor=max(1, num_pos))

    def reg_loss(self, boxes: Tensor, targets: Tensor, is_pos: Tensor) -> Tensor:
        """GIoU loss averaged over positive rows; 0 (with a graph) when there are none."""
        if not bool(is_pos.any()):
            return boxes.sum() * 0.
        return self.loss_bbox(boxes[is_pos], targets[is_pos].float())

    def loss_oc(self, anchor_embeds: Tensor, anchors: Tensor,
                batch_gt_instances: List[InstanceData]) -> Tuple[dict, InstanceData]:
        """OC stage-0 losses (§4.3) and the sampled rows.

        Args:
            anchor_embeds (Tensor): x_a, (N, K, d).
            anchors (Tensor): (K, 4).
            batch_gt_instances (list[InstanceData]): ``bboxes``, ``labels``,
                ``person_labels``, ``known`` per image.

        Returns:
            tuple[dict, InstanceData]: ``loss_anchor_cls``, ``loss_bbox0``; the rows.
        """
        offsets = self.bridge(anchor_embeds)
        logits = self.logits(offsets)  # (N, K)
        priors = InstanceData(priors=anchors)
        cls_labels, rows = [], []
        for i, gt in enumerate(batch_gt_instances):
            gt = InstanceData(bboxes=gt.bboxes, labels=gt.labels,
                              person_labels=gt.person_labels, known=gt.known)
            assign = self.assigner.assign(priors, gt)
            labels = torch.full_like(assign.gt_inds, -1)
            labels[assign.gt_inds == 0] = 0
            labels[assign.gt_inds > 0] = 1
            cls_labels.append(labels)
            res = self.sampler.sample(assign, priors, gt)
            inds = torch.cat([res.pos_inds, res.neg_inds])
            # §4.3.6: negatives carry GT 0 as their (unused unless IoU >= 0.7) target.
            tgt = torch.cat([res.pos_assigned_gt_inds,
                             res.neg_inds.new_zeros(res.neg_inds.numel())]).long()
            rows.append(self._rows(i, i, inds, tgt, res.pos_inds.numel(), gt))
        losses = dict(loss_anchor_cls=self.dense_cls_loss(logits.reshape(-1),
                                                          torch.cat(cls_labels)))
        rows = InstanceData.cat(rows)
        deltas = self.reg_head(offsets[rows.img_inds, rows.anchor_inds])
        rows.bboxes = self.decode(anchors[rows.anchor_inds], deltas)
        losses['loss_bbox0'] = self.reg_loss(rows.bboxes, rows.target_bboxes, rows.is_pos)
        return losses, rows

    @staticmethod
    def _rows(img_idx: int, group: int, anchor_inds: Tensor, target_inds: Tensor,
              num_pos: int, gt: InstanceData) -> InstanceData:
        """Row bookkeeping of one image (OC) or one pair (QC)."""
        num = anchor_inds.numel()
        device = anchor_inds.device
        is_pos = torch.arange(num, device=device) < num_pos
        valid = torch.full((num,), len(gt) > 0, dtype=torch.bool, device=device)
        if len(gt) > 0:
            # known follows the label map (no LUT row: unlabelled), as in the re-id head
            tb, tl, tk = (gt.bboxes[target_inds], gt.person_labels[target_inds],
                          gt.known[target_inds].bool() & (gt.person_labels[target_inds] >= 0))
        else:
            tb = anchor_inds.new_zeros((num, 4), dtype=torch.float)
            tl = anchor_inds.new_full((num,), -1)
            tk = torch.zeros(num, dtype=torch.bool, device=device)
        return InstanceData(img_inds=anchor_inds.new_full((num,), img_idx),
                            groups=anchor_inds.new_full((num,), group),
                            anchor_inds=anchor_inds, target_bboxes=tb.float(),
                            target_labels=tl.long(), target_known=tk, is_pos=is_pos,
                            valid=valid)

    # ------------------------------------------------------------------ inference
    def predict_oc(self, anchor_embeds: Tensor, anchors: Tensor,
                   batch_img_metas: List[dict]) -> List[InstanceData]:
        """OC detections per image in input coordinates (§6.1 steps 1-4).

        Args:
            anchor_embeds (Tensor): x_a, (N, K, d).
            anchors (Tensor): (K, 4).
            batch_img_metas (list[dict]): need ``img_shape``.

        Returns:
            list[InstanceData]: ``bboxes`` (M, 4), ``scores`` (M,), ``logits`` (M,).
        """
        cfg = self.test_cfg
        results = []
        for i, meta in enumerate(batch_img_metas):
            offsets = self.bridge(anchor_embeds[i])
            norms = offsets.float().norm(dim=-1)
            # The 1000 anchors nearest to their predicted query (smallest norm).
            idx = norms.topk(min(cfg.get('pre_topk', 1000), norms.numel()),
                             largest=False).indices
            logits = self.logits.forward_norm(norms[idx])
            scores = logits.sigmoid()
            keep = scores > cfg.get('score_thr', 0.5)
            idx, logits, scores = idx[keep], logits[keep], scores[keep]
            top = scores.topk(min(cfg.get('topk', 300), scores.numel())).indices
            idx, logits, scores = idx[top], logits[top], scores[top]
            boxes = self.decode(anchors[idx], self.reg_head(offsets[idx]))
            results.append(self.nms_clip(boxes, scores, logits, meta['img_shape']))
        return results

    def nms_clip(self, boxes: Tensor, scores: Tensor, logits: Tensor, img_shape,
                 groups: Optional[Tensor] = None) -> InstanceData:
        """Clip to the image, NMS at ``nms_iou``, keep the top ones.

        Without ``groups`` (OC) one NMS runs over the image and ``max_per_img`` boxes
        are kept. With ``groups`` (QC: the query of each box) NMS and the cap
        (``max_per_query``) apply to each query on its own (§6.2 step 4), so a query's
        detections never depend on the other queries searched in the same image.
        """
        cfg = self.test_cfg
        h, w = img_shape[:2]
        boxes = torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                             boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], dim=1)
        if groups is not None:
            keep = grouped_nms(boxes, scores, groups, cfg.get('nms_iou', 0.5),
                               cfg.get('max_per_query', 100))
        elif boxes.numel() == 0:
            keep = boxes.new_zeros((0,), dtype=torch.long)
        else:
            _, keep = nms(boxes, scores.float(), cfg.get('nms_iou', 0.5))
            keep = keep[:cfg.get('max_per_img', 300)]
        out = InstanceData(bboxes=boxes[keep], scores=scores[keep], logits=logits[keep])
        if groups is not None:
            out.groups = groups[keep]
        return out
