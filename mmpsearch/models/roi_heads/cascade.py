# Copyright (c) mmpsearch contributors. All rights reserved.
"""Cascade refinement of SPNet, stages 1..C (spnet.md §3.8, §4.5, §6.1 step 6).

Each stage re-embeds the previous stage's boxes with a loc head (RoIAlign on P3 -> stage-4
copy -> ``Linear(C5 -> d)``, or the shared re-id head), forms the offset with its own
bridge (OC: ``x_o = bridge_i(x_a)``; QC inference: ``x_o = x_q - x_a``), and applies its own
FixedNorm logits and box MLP. The loc embedding itself comes from the caller
(``embed_fn(feats, rois, stage)``), since the RoI heads live in :class:`ReidRoIHead`.

Training (OC only; the released QC cascade path is broken, §4.4.9), per stage:

1. decode the previous stage's sampled rows, clip, stop gradients;
2. add the GT boxes as proposals and re-match at IoU 0.5 / 0.5 without low-quality matches;
3. sample 128 rows per image with at most 50% positives;
4. loss ``loss_cls{i}``: BCE on the logit, summed / max(1, #pos); ``loss_bbox{i}``: GIoU,
   mean over positives.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from mmcv.ops import nms
from mmdet.structures.bbox import bbox2roi
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmpsearch.registry import MODELS, TASK_UTILS
from ..layers.grouped_nms import grouped_nms
from .reid_roi_head import clip_boxes, clip_rows

__all__ = ['SwapPathCascade']

# (feats, rois, stage[, targets=(labels, known, foreground)]) -> (R, d) loc embeddings
EmbedFn = Callable[..., Tensor]


@MODELS.register_module()
class SwapPathCascade(BaseModule):
    """Cascade stages 1..C with per-stage bridge, logits and box MLP.

    Args:
        num_stages (int): C (2 for SPNet-L).
        embed_dim (int): loc embedding dimension d. Defaults to 128.
        bridge (dict): bridge config per stage.
        logits (dict): logits config per stage (``dim`` filled in).
        reg_head (dict): box MLP config per stage.
        bbox_coder (dict): unit-weight delta coder.
        loss_cls (dict): sigmoid BCE (``cls_loss_func: xe``).
        loss_bbox (dict): GIoU loss.
        train_cfg (dict, optional): ``assigner`` (0.5 / 0.5, no low-quality) and
            ``sampler`` (128, 0.5, GT added as proposals).
        test_cfg (dict, optional): ``nms_iou`` (0.5), ``max_per_img`` (300).
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 num_stages: int = 2,
                 embed_dim: int = 128,
                 bridge: dict = dict(type='OffsetBridge', mode='combiner'),
                 logits: dict = dict(type='FixedNormLogits', sign='neg'),
                 reg_head: dict = dict(type='BoxRegressionMLP', num_hidden=4),
                 bbox_coder: dict = dict(type='mmdet.DeltaXYWHBBoxCoder',
                                         target_means=[0., 0., 0., 0.],
                                         target_stds=[1., 1., 1., 1.]),
                 loss_cls: dict = dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True,
                                       loss_weight=1.0),
                 loss_bbox: dict = dict(type='mmdet.GIoULoss', eps=1e-7, loss_weight=1.0),
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if num_stages < 1:
            raise ValueError(f'SwapPathCascade needs num_stages >= 1, got {num_stages}')
        self.num_stages = num_stages
        self.bridges = nn.ModuleList(MODELS.build(dict(bridge, dim=embed_dim))
                                     for _ in range(num_stages))
        self.logits = nn.ModuleList(MODELS.build(dict(logits, dim=embed_dim))
                                    for _ in range(num_stages))
        self.reg_heads = nn.ModuleList(MODELS.build(dict(reg_head, dim=embed_dim))
                                       for _ in range(num_stages))
        self.bbox_coder = TASK_UTILS.build(bbox_coder)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(nms_iou=0.5, max_per_img=300)
        self.test_cfg.update(test_cfg or {})
        if self.train_cfg:
            self.assigner = TASK_UTILS.build(self.train_cfg['assigner'])
            self.sampler = TASK_UTILS.build(self.train_cfg['sampler'])

    # ------------------------------------------------------------------ training
    def _sample_stage(self, rows: InstanceData, batch_gt_instances: List[InstanceData],
                      batch_img_metas: List[dict]) -> InstanceData:
        """Steps 1-3: proposals of the next stage with their targets."""
        boxes = clip_rows(rows.bboxes.detach().float(), rows.img_inds, batch_img_metas)
        out = []
        for i, gt in enumerate(batch_gt_instances):
            gt = InstanceData(bboxes=gt.bboxes.float(), labels=gt.labels,
                              person_labels=gt.person_labels, known=gt.known)
            props = InstanceData(priors=boxes[rows.img_inds == i])
            res = self.sampler.sample(self.assigner.assign(props, gt), props, gt)
            priors = torch.cat([res.pos_priors, res.neg_priors])
            num, num_pos = priors.shape[0], res.pos_inds.numel()
            tgt = torch.cat([res.pos_assigned_gt_inds.long(),
                             res.neg_inds.new_zeros(res.neg_inds.numel())])
            has_gt = len(gt) > 0
            out.append(InstanceData(
                img_inds=tgt.new_full((num,), i), groups=tgt.new_full((num,), i),
                priors=priors,
                target_bboxes=gt.bboxes[tgt] if has_gt else priors.new_zeros((num, 4)),
                target_labels=gt.person_labels[tgt].long() if has_gt else tgt.new_full(
                    (num,), -1),
                target_known=gt.known[tgt].bool() if has_gt else torch.zeros_like(
                    tgt, dtype=torch.bool),
                is_pos=torch.arange(num, device=tgt.device) < num_pos,
                valid=torch.full((num,), has_gt, dtype=torch.bool, device=tgt.device)))
        return InstanceData.cat(out)

    def loss(self, feats: Sequence[Tensor], rows: InstanceData,
             batch_gt_instances: List[InstanceData], batch_img_metas: List[dict],
             embed_fn: EmbedFn) -> Tuple[dict, InstanceData]:
        """Cascade losses and the last stage's rows.

        Args:
            feats (Sequence[Tensor]): FPN maps.
            rows (InstanceData): stage-0 rows (``img_inds``, ``bboxes``).
            batch_gt_instances (list[InstanceData]): GT per image.
            batch_img_metas (list[dict]): need ``img_shape``.
            embed_fn (callable): ``(feats, rois, stage, targets=...) -> (R, d)`` loc
                embeddings (``ReidRoIHead.loc_embed``).

        Returns:
            tuple[dict, InstanceData]: ``loss_cls{i}``, ``loss_bbox{i}`` for i = 1..C;
            rows of stage C with decoded ``bboxes``.
        """
        losses = {}
        for s in range(1, self.num_stages + 1):
            rows = self._sample_stage(rows, batch_gt_instances, batch_img_metas)
            rois = torch.cat([rows.img_inds[:, None].float(), rows.priors], dim=1)
            # Row identities, for a shared re-id head whose normaliser needs them.
            targets = (rows.target_labels, rows.target_known & rows.is_pos, rows.is_pos)
            offsets = self.bridges[s - 1](embed_fn(feats, rois, s, targets=targets))
            logits = self.logits[s - 1](offsets)
            num_pos = int(rows.is_pos.sum())
            target = torch.where(rows.is_pos, 0, 1)  # class index: 0 person, 1 background
            losses[f'loss_cls{s}'] = self.loss_cls(logits[:, None], target,
                                                   avg_factor=max(1, num_pos))
            deltas = self.reg_heads[s - 1](offsets)
            rows.bboxes = self.bbox_coder.decode(rows.priors, deltas.float())
            if num_pos:
                losses[f'loss_bbox{s}'] = self.loss_bbox(rows.bboxes[rows.is_pos],
                                                         rows.target_bboxes[rows.is_pos])
            else:
                losses[f'loss_bbox{s}'] = rows.bboxes.sum() * 0.
        return losses, rows

    # ------------------------------------------------------------------ inference
    def predict(self, feats: Sequence[Tensor], results: List[InstanceData],
                batch_img_metas: List[dict], embed_fn: EmbedFn,
                batch_query_embeds: Optional[List[Tensor]] = None) -> List[InstanceData]:
        """Refine stage-0 detections (§6.1 step 6; §6.2 step 6 for QC).

        Args:
            feats (Sequence[Tensor]): FPN maps.
            results (list[InstanceData]): ``bboxes`` per image (and ``groups`` = query row
                for QC detections).
            batch_img_metas (list[dict]): need ``img_shape``.
            embed_fn (callable): loc embedding function.
            batch_query_embeds (list[Tensor], optional): QC only; with it the offsets are
                ``x_q - x_a`` instead of the bridge (a model trained QC has no OC bridge).

        Returns:
            list[InstanceData]: refined ``bboxes``, ``scores`` (sigmoid of the last logit),
            ``logits`` (and ``groups``).
        """
        for s in range(1, self.num_stages + 1):
            counts = [len(r) for r in results]
            if sum(counts) == 0:
                break
            rois = bbox2roi([r.bboxes.float() for r in results])
            x_a = embed_fn(feats, rois, s)
            if batch_query_embeds is None:
                offsets = self.bridges[s - 1](x_a)
            else:
                x_q = torch.cat([q[r.groups] for q, r in zip(batch_query_embeds, results)])
                offsets = x_q - x_a
            logits = self.logits[s - 1](offsets)
            boxes = self.bbox_coder.decode(rois[:, 1:], self.reg_heads[s - 1](offsets).float())
            new = []
            for r, meta, b, lg in zip(results, batch_img_metas, boxes.split(counts),
                                      logits.split(counts)):
                new.append(self._nms(clip_boxes(b, meta['img_shape']), lg,
                                     r.groups if 'groups' in r else None))
            results = new
        return results

    def _nms(self, boxes: Tensor, logits: Tensor, groups: Optional[Tensor]) -> InstanceData:
        """Plain NMS ordered by logit, no score threshold; for QC detections NMS and the
        cap (``max_per_query``) apply to each query on its own (§6.2)."""
        iou = self.test_cfg['nms_iou']
        if groups is not None:
            keep = grouped_nms(boxes, logits, groups, iou,
                               self.test_cfg.get('max_per_query', 100))
        elif boxes.shape[0] == 0:
            keep = boxes.new_zeros((0,), dtype=torch.long)
        else:
            keep = nms(boxes, logits.float(), iou)[1][:self.test_cfg['max_per_img']]
        out = InstanceData(bboxes=boxes[keep], logits=logits[keep],
                           scores=logits[keep].sigmoid())
        if groups is not None:
            out.groups = groups[keep]
        return out
