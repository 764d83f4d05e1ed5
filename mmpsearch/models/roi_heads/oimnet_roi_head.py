# Copyright (c) mmpsearch contributors. All rights reserved.
"""RoI head of OIMNet / OIMNet++ / OIMNet+++ (spec oimnetpp.md §1.4-1.8, §2.6).

One shared conv5 head feeds both tasks (spec §1.5)::

    RoIAlign 14x14 on conv4 -> conv5 (ResNet-50 layer4) -> global max pool -> g (R, 2048)
    g -> BBoxHead (person/background logits, box deltas)            detection
    g -> EmbeddingProjector: Linear 2048->256 -> none/BN/PN -> L2   re-id embedding

In training, ProtoNorm (in the projector, and for OIMNet+++ in every BN of conv5) takes its
prototypes from the labels of the sampled RoIs; the OIM/LOIM loss sees the foreground RoIs
with the LUT row, labelled flag and IoU of their matched ground truth.
"""
from typing import List, Optional, Tuple

import torch
from mmcv.ops import batched_nms
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.utils import unpack_gt_instances
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi, get_box_tensor, scale_boxes
from mmdet.utils import ConfigType, InstanceList, OptConfigType, OptMultiConfig
from mmengine.structures import InstanceData
from torch import Tensor

from mmpsearch.registry import MODELS
from ..layers.roi_pooling import extract_rois
from ..necks.proto_norm import (convert_batchnorm_to_protonorm, prototype_keys,
                                prototype_keys_of)


@MODELS.register_module()
class OIMNetRoIHead(StandardRoIHead):
    """Shared conv5 head with a box branch and a re-id embedding branch.

    Args:
        bbox_roi_extractor (dict): RoI extractor, e.g. ``mmdet.SingleRoIExtractor`` with
            RoIAlign 14x14, sampling ratio 2, on the stride-16 conv4 map.
        bbox_head (dict): ``mmdet.BBoxHead`` on the pooled 2048-d feature
            (``with_avg_pool=False, roi_feat_size=1, in_channels=2048, num_classes=1``).
        shared_head (dict): The conv5 head, ``mmdet.ResLayer`` (depth 50, stage 3).
        reid_head (dict): :class:`~mmpsearch.models.necks.EmbeddingProjector` config; its
            ``norm`` picks the Table 2 normaliser and its ``id_mode`` the ProtoNorm prototype
            rule used everywhere in this head.
        reid_loss (dict): :class:`~mmpsearch.models.losses.OIMLoss` or ``LOIMLoss`` config.
        shared_head_norm (str): ``'BN'`` (OIMNet, OIMNet++) or ``'PN'``: every BatchNorm2d of
            conv5 becomes an affine ProtoNorm2d initialised from it (OIMNet+++, spec §2.6).
        train_cfg (dict, optional): ``rcnn`` train config (assigner, sampler).
        test_cfg (dict, optional): ``rcnn`` test config: ``score_thr``, ``nms`` and
            ``max_per_img``.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 bbox_roi_extractor: ConfigType,
                 bbox_head: ConfigType,
                 shared_head: ConfigType,
                 reid_head: ConfigType,
                 reid_loss: ConfigType,
                 shared_head_norm: str = 'BN',
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            bbox_roi_extractor=bbox_roi_extractor,
            bbox_head=bbox_head,
            shared_head=shared_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            init_cfg=init_cfg)
        if shared_head_norm not in ('BN', 'PN'):
            raise ValueError(f'OIMNetRoIHead: shared_head_norm must be BN or PN, got '
                             f'{shared_head_norm!r}')
        self.shared_head_norm = shared_head_norm
        if shared_head_norm == 'PN':
            # The converted layers keep BatchNorm's parameter names, so pretrained ResNet
            # weights loaded later by init_weights fill them as they would fill BN.
            convert_batchnorm_to_protonorm(self.shared_head)
        self.reid_head = MODELS.build(reid_head)
        self.reid_loss = MODELS.build(reid_loss)

    @property
    def uses_prototypes(self) -> bool:
        """Whether any layer needs prototype keys in training."""
        return self.shared_head_norm == 'PN' or getattr(self.reid_head, 'uses_prototypes',
                                                          False)

    # ------------------------------------------------------------------ features
    def _roi_forward(self, x: Tuple[Tensor], rois: Tensor,
                     keys: Optional[Tensor] = None) -> dict:
        """RoIAlign -> conv5 -> GMP -> box branch and embedding branch.

        Args:
            x (tuple[Tensor]): Backbone maps; the extractor uses the first ``num_inputs``.
            rois (Tensor): (R, 5) RoIs ``[batch_idx, x1, y1, x2, y2]`` in input pixels.
            keys (Tensor, optional): (R,) ProtoNorm prototype keys (training only).

        Returns:
            dict: ``cls_score`` (R, 2), ``bbox_pred`` (R, 4), ``embeddings`` (R, D).
        """
        feats = extract_rois(self.bbox_roi_extractor, x[:self.bbox_roi_extractor.num_inputs],
                             rois)
        if self.training and self.shared_head_norm == 'PN':
            with prototype_keys_of(self.shared_head, keys):
                feats = self.shared_head(feats)
        else:
            feats = self.shared_head(feats)
        pooled = feats.amax(dim=(2, 3))  # global max pooling (spec §1.5)
        cls_score, bbox_pred = self.bbox_head(pooled)
        embeddings = self.reid_head(pooled, keys)
        return dict(cls_score=cls_score, bbox_pred=bbox_pred, embeddings=embeddings)

    def _empty_embeddings(self, ref: Tensor) -> Tensor:
        return ref.new_zeros((0, self.reid_head.fc.out_features))

    # ------------------------------------------------------------------ training
    def loss(self, x: Tuple[Tensor], rpn_results_list: InstanceList,
             batch_data_samples: SampleList) -> dict:
        """Detection and re-id losses on the sampled RoIs (spec §1.4, §1.6, §3).

        Args:
            x (tuple[Tensor]): Backbone maps.
            rpn_results_list (list[InstanceData]): Proposals per image (``bboxes``).
            batch_data_samples (list[DetDataSample]): With ``gt_instances`` carrying
                ``bboxes``, ``labels``, ``person_labels`` and ``known`` (data contract §2).

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``acc`` and ``loss_reid``.
        """
        batch_gt_instances, batch_gt_instances_ignore, _ = unpack_gt_instances(
            batch_data_samples)
        sampling_results, person_labels, known, foreground, ious = [], [], [], [], []
        for i, rpn_results in enumerate(rpn_results_list):
            rpn_results.priors = rpn_results.pop('bboxes')
            gt = batch_gt_instances[i]
            for field in ('person_labels', 'known'):
                if field not in gt:
                    raise KeyError(f'OIMNetRoIHead: gt_instances of image '
                                   f'{batch_data_samples[i].metainfo.get("img_path")} lack '
                                   f'{field!r} (see docs/data_contract.md §2)')
            assign_result = self.bbox_assigner.assign(rpn_results, gt,
                                                      batch_gt_instances_ignore[i])
            res = self.bbox_sampler.sample(assign_result, rpn_results, gt)
            sampling_results.append(res)
            gt_idx = res.pos_assigned_gt_inds.long()
            num_neg = res.neg_inds.numel()
            # Rows follow res.priors = [positives; negatives].
            person_labels.append(torch.cat([
                gt.person_labels[gt_idx].long(),
                gt_idx.new_full((num_neg, ), -1)]))
            # `known` follows the label map: an identity without a LUT row (PRW's 483/932
            # under OIMNet++'s map) is an unlabelled sample (queue), never a labelled one.
            gt_known = gt.known.bool() & (gt.person_labels >= 0)
            known.append(torch.cat([gt_known[gt_idx],
                                    gt_idx.new_zeros(num_neg, dtype=torch.bool)]))
            foreground.append(torch.cat([gt_idx.new_ones(gt_idx.numel(), dtype=torch.bool),
                                         gt_idx.new_zeros(num_neg, dtype=torch.bool)]))
            # LOIM's s_r: the max IoU over the image's GT boxes, i.e. with the matched GT
            # (spec §3.4); appended GT boxes have 1.
            ious.append(torch.cat([assign_result.max_overlaps[res.pos_inds].float(),
                                   x[0].new_zeros(num_neg)]))
        person_labels, known, foreground, ious = (torch.cat(t) for t in (person_labels, known,
                                                                          foreground, ious))
        rois = bbox2roi([res.priors for res in sampling_results])
        keys = None
        if self.uses_prototypes:
            keys = prototype_keys(person_labels, known, foreground, self.reid_head.id_mode)
        results = self._roi_forward(x, rois, keys)

        losses = self.bbox_head.loss_and_target(
            cls_score=results['cls_score'],
            bbox_pred=results['bbox_pred'],
            rois=rois,
            sampling_results=sampling_results,
            rcnn_train_cfg=self.train_cfg)['loss_bbox']
        # Only foreground RoIs reach the OIM loss; background is dropped (spec §3.2).
        losses['loss_reid'] = self.reid_loss(results['embeddings'][foreground],
                                             person_labels[foreground], known[foreground],
                                             ious[foreground])
        return losses

    # ------------------------------------------------------------------ inference
    def predict(self,
                x: Tuple[Tensor],
                rpn_results_list: InstanceList,
                batch_data_samples: SampleList,
                rescale: bool = True) -> InstanceList:
        """Detections with the embedding of the proposal each box was regressed from
        (spec §1.8; the embedding is not re-extracted on the refined box).

        Args:
            x (tuple[Tensor]): Backbone maps.
            rpn_results_list (list[InstanceData]): Proposals per image.
            batch_data_samples (list[DetDataSample]): Meta (``img_shape``, ``scale_factor``).
            rescale (bool): Map boxes to original image pixels. Defaults to True.

        Returns:
            list[InstanceData]: ``bboxes`` (M, 4), ``scores`` (M,), ``labels`` (M,) and
            ``embeddings`` (M, D) per image.
        """
        proposals = [get_box_tensor(res.bboxes) for res in rpn_results_list]
        cfg = self.test_cfg
        results_list = []
        num_per_img = [p.shape[0] for p in proposals]
        if sum(num_per_img) == 0:
            outs = None
        else:
            outs = self._roi_forward(x, bbox2roi(proposals))
            outs = {k: v.split(num_per_img) for k, v in outs.items()}
        for i, data_sample in enumerate(batch_data_samples):
            meta = data_sample.metainfo
            res = InstanceData()
            if outs is None or num_per_img[i] == 0:
                res.bboxes = x[0].new_zeros((0, 4))
                res.scores = x[0].new_zeros((0, ))
                res.labels = x[0].new_zeros((0, ), dtype=torch.long)
                res.embeddings = self._empty_embeddings(x[0])
                results_list.append(res)
                continue
            scores = outs['cls_score'][i].float().softmax(-1)[:, 0]  # class 0 = person
            boxes = self.bbox_head.bbox_coder.decode(
                proposals[i], outs['bbox_pred'][i].float(), max_shape=meta['img_shape'])
            boxes = get_box_tensor(boxes)
            emb = outs['embeddings'][i].float()
            valid = scores > cfg.score_thr  # strictly greater, as released
            boxes, scores, emb = boxes[valid], scores[valid], emb[valid]
            if boxes.numel():
                one_class = scores.new_zeros(scores.shape, dtype=torch.long)
                _, keep = batched_nms(boxes, scores, one_class, cfg.nms)
                keep = keep[:cfg.max_per_img]
                boxes, scores, emb = boxes[keep], scores[keep], emb[keep]
            if rescale and boxes.numel():
                boxes = scale_boxes(boxes, [1 / s for s in meta['scale_factor']])
            res.bboxes = boxes
            res.scores = scores
            res.labels = scores.new_zeros(scores.shape, dtype=torch.long)
            res.embeddings = emb
            results_list.append(res)
        return results_list

    def predict_box_embeddings(self, x: Tuple[Tensor], boxes_list: List[Tensor]) -> List[Tensor]:
        """Embeddings of given boxes (queries, annotated gallery boxes; spec §1.8).

        Args:
            x (tuple[Tensor]): Backbone maps of the batch.
            boxes_list (list[Tensor]): Per image, (N_i, 4) boxes in input pixels.

        Returns:
            list[Tensor]: Per image, (N_i, D) L2-normalised embeddings.
        """
        boxes_list = [get_box_tensor(b).to(x[0].device, torch.float32) for b in boxes_list]
        sizes = [b.shape[0] for b in boxes_list]
        if sum(sizes) == 0:
            return [self._empty_embeddings(x[0]) for _ in boxes_list]
        emb = self._roi_forward(x, bbox2roi(boxes_list))['embeddings'].float()
        return list(emb.split(sizes))
