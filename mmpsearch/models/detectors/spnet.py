# Copyright (c) mmpsearch contributors. All rights reserved.
"""SPNet, the Swap Path Network (Jaffe & Zakhor, WACV 2025; spnet.md).

A thin detector that wires the parts: ConvNeXt trunk -> FPN P3-P7 -> :class:`SwapPathHead`
(stage 0, no RPN) -> optional :class:`SwapPathCascade` (stages 1..C) -> :class:`ReidRoIHead`
(re-id embeddings and the OIM loss). The swap path is chosen by config:

* ``train_cfg.path``: ``'oc'`` (object-centric, fine-tuning) or ``'qc'`` (query-centric);
* ``test_cfg.path``: ``'oc'`` (all reported numbers) or ``'qc'`` (per-query search; the
  caller provides ``qc_query_embeddings`` per gallery sample, see :meth:`predict`).

Predictions follow ``docs/data_contract.md``: ``pred_instances`` (bboxes in original
pixels, scores, labels, L2-normalised ``embeddings``), ``gt_embeddings`` and
``query_embeddings`` from the annotated boxes of the same pass (§6.1 step 7).
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox2roi
from mmengine.structures import InstanceData
from torch import Tensor

from mmpsearch.registry import MODELS
from ..utils.pretrain_transfer import SPNetPretrainedInit, split_transfer_cfg

__all__ = ['SPNet']

_PATHS = ('oc', 'qc')


@MODELS.register_module()
class SPNet(BaseDetector):
    """Swap Path Network.

    Args:
        backbone (dict): trunk with ``clone_stage4`` / ``stage4_state_dict``
            (:class:`ConvNeXtTrunk`).
        neck (dict): FPN giving P3-P7.
        bbox_head (dict): :class:`SwapPathHead`.
        roi_head (dict): :class:`ReidRoIHead`.
        cascade (dict, optional): :class:`SwapPathCascade` (SPNet-L: 2 stages); None or
            ``num_stages=0`` disables it (SPNet-S).
        train_cfg (dict, optional): ``path`` and the parts' ``bbox_head``, ``cascade``,
            ``roi_head`` training settings.
        test_cfg (dict, optional): ``path``, ``qc_cascade_offset`` (``'bridge'`` or
            ``'query'``) and the parts' ``bbox_head``, ``cascade`` settings.
        data_preprocessor (dict, optional): mmdet ``DetDataPreprocessor``.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 bbox_head: dict,
                 roi_head: dict,
                 cascade: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})
        self.train_path = self.train_cfg.get('path', 'oc')
        self.test_path = self.test_cfg.get('path', 'oc')
        for name, path in (('train_cfg.path', self.train_path),
                           ('test_cfg.path', self.test_path)):
            if path not in _PATHS:
                raise ValueError(f"SPNet: {name} must be 'oc' or 'qc', got {path!r}")
        if cascade is not None and cascade.get('num_stages', 1) == 0:
            cascade = None  # num_cascade_steps: 0 (SPNet-S); the stage settings stay in cfg
        if cascade is not None and self.train_cfg and self.train_path == 'qc':
            raise ValueError('SPNet: QC training with a cascade is not supported (the '
                             'released QC cascade path is broken, spnet.md §4.4.9)')
        self.backbone = MODELS.build(backbone)
        if not hasattr(self.backbone, 'clone_stage4'):
            raise TypeError(f'SPNet: backbone {type(self.backbone).__name__} has no '
                            'clone_stage4(); use ConvNeXtTrunk')
        self.neck = MODELS.build(neck)
        self.bbox_head = MODELS.build(dict(bbox_head,
                                           train_cfg=self.train_cfg.get('bbox_head'),
                                           test_cfg=self.test_cfg.get('bbox_head')))
        roi_head = dict(roi_head, train_cfg=self.train_cfg.get('roi_head'))
        roi_head['stage4_factory'] = self.backbone.clone_stage4
        self.roi_head = MODELS.build(roi_head)
        self.cascade = None
        if cascade is not None:
            self.cascade = MODELS.build(dict(cascade,
                                             train_cfg=self.train_cfg.get('cascade'),
                                             test_cfg=self.test_cfg.get('cascade')))
            if not self.roi_head.shared and len(self.roi_head.loc_stages) < \
                    self.cascade.num_stages:
                raise ValueError('SPNet: separate loc heads need one head per cascade '
                                 f'stage, got {len(self.roi_head.loc_stages)} for '
                                 f'{self.cascade.num_stages} stages')

    def init_weights(self) -> None:
        """Init every part, then copy the (pretrained) trunk stage 4 into the RoI heads.

        The released code deep-copies stage 4 after loading the ImageNet weights, so the
        copies start from the same weights as the trunk (§3.4).
        """
        # A pre-training checkpoint (init_cfg type 'SPNetPretrained', spnet.md §5) is
        # loaded last, over the ImageNet trunk and the stage-4 copies; parts it does not
        # give keep that init.
        init_cfg, transfers = split_transfer_cfg(self.init_cfg)
        self.init_cfg = init_cfg
        try:
            super().init_weights()
            self.roi_head.sync_stage4(self.backbone.stage4_state_dict())
            for cfg in transfers:
                cfg = {k: v for k, v in cfg.items() if k != 'type'}
                self.transfer_report = SPNetPretrainedInit(**cfg)(self)
        finally:
            self.init_cfg = self._merge_init_cfg(init_cfg, transfers)

    @staticmethod
    def _merge_init_cfg(rest, transfers):
        cfgs = ([] if rest is None else rest if isinstance(rest, list) else [rest])
        cfgs = cfgs + list(transfers)
        return None if not cfgs else cfgs[0] if len(cfgs) == 1 else cfgs

    # ------------------------------------------------------------------ features
    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor, ...]:
        """FPN maps P3..P7 of (N, 3, H, W) inputs."""
        return tuple(self.neck(self.backbone(batch_inputs)))

    def _stage0(self, batch_inputs: Tensor, batch_img_metas: List[dict]):
        feats = self.extract_feat(batch_inputs)
        anchor_embeds = self.bbox_head(feats)
        pad_shape = batch_img_metas[0].get('batch_input_shape', batch_inputs.shape[-2:])
        return feats, anchor_embeds, self.bbox_head.anchors(feats, pad_shape)

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None):
        """FPN maps and anchor embeddings (N, K, d), for tracing and FLOP counting."""
        feats = self.extract_feat(batch_inputs)
        return feats, self.bbox_head(feats)

    # ------------------------------------------------------------------ training
    def loss(self, batch_inputs: Tensor,
             batch_data_samples: List[DetDataSample]) -> Dict[str, Tensor]:
        """Losses of the configured training path (§4.3-4.6, §4.8: plain sum)."""
        metas = [ds.metainfo for ds in batch_data_samples]
        gts = [ds.gt_instances for ds in batch_data_samples]
        feats, anchor_embeds, anchors = self._stage0(batch_inputs, metas)
        if self.train_path == 'oc':
            losses, rows = self.bbox_head.loss_oc(anchor_embeds, anchors, gts)
            if self.cascade is not None:
                cascade_losses, rows = self.cascade.loss(feats, rows, gts, metas,
                                                         self.roi_head.loc_embed)
                losses.update(cascade_losses)
        else:
            queries, view_groups = self.bbox_head.qc_queries(gts, metas)
            if len(queries) == 0:  # no box in the batch: zero losses (loss_qc)
                query_embeds = anchor_embeds.new_zeros((0, anchor_embeds.shape[-1]))
            else:
                rois = torch.cat([queries.img_inds[:, None].float(), queries.bboxes], dim=1)
                query_embeds = self.roi_head.loc_embed(
                    feats, rois, 1, (queries.person_labels, queries.known,
                                     torch.ones_like(queries.known)))
            losses, rows = self.bbox_head.loss_qc(anchor_embeds, anchors, query_embeds,
                                                  queries, view_groups)
            # The de-duplicated boxes are the targets of every QC loss (§4.4.1).
            gts = [queries[queries.img_inds == i] for i in range(len(gts))]
        losses.update(self.reid_loss(batch_inputs, feats, rows, gts, metas))
        return losses

    def reid_loss(self, batch_inputs: Tensor, feats: Tuple[Tensor, ...],
                  rows: Optional[InstanceData], gts: List[InstanceData],
                  metas: List[dict]) -> Dict[str, Tensor]:
        """The re-id loss (§4.6) on the last stage's rows and the GT boxes; a
        pre-training detector adds its teacher here."""
        return self.roi_head.loss(feats, rows, gts, metas)

    # ------------------------------------------------------------------ inference
    def predict(self, batch_inputs: Tensor, batch_data_samples: List[DetDataSample],
                rescale: bool = True) -> List[DetDataSample]:
        """Detections with re-id embeddings, plus embeddings of annotated boxes.

        OC (§6.1): stage 0 (top-1000 by norm, score > 0.5, top-300, NMS 0.5), cascade,
        re-id embeddings. QC (§6.2): each sample must carry ``qc_query_embeddings``
        (Q_i, d) (see :meth:`predict_query_loc_embeddings`); every detection gets
        ``pred_instances.query_inds`` (row in that tensor) and, when the sample carries
        the split's query rows ``qc_query_idx`` (Q_i,) (``QCTestLoop`` sets them),
        ``pred_instances.query_idx`` (the row of its query in ``search_protocol``).

        Args:
            batch_inputs (Tensor): (N, 3, H, W).
            batch_data_samples (list[DetDataSample]): with ``gt_instances`` and
                ``query_instances`` when their embeddings are wanted.
            rescale (bool): boxes in original image pixels. Defaults to True.

        Returns:
            list[DetDataSample]: with ``pred_instances``, ``gt_embeddings``,
            ``query_embeddings`` (the last two when the boxes are given).
        """
        metas = [ds.metainfo for ds in batch_data_samples]
        feats, anchor_embeds, anchors = self._stage0(batch_inputs, metas)
        if self.test_path == 'oc':
            results = self.bbox_head.predict_oc(anchor_embeds, anchors, metas)
            query_embeds = None
        else:
            query_embeds = self._qc_query_embeds(batch_data_samples)
            results = self.bbox_head.predict_qc(anchor_embeds, anchors, query_embeds, metas)
        if self.cascade is not None:
            use_query = (query_embeds is not None
                         and self.test_cfg.get('qc_cascade_offset', 'bridge') == 'query')
            results = self.cascade.predict(feats, results, metas, self.roi_head.loc_embed,
                                           query_embeds if use_query else None)
        return self._add_embeddings(feats, results, batch_data_samples, rescale)

    @staticmethod
    def _qc_query_embeds(batch_data_samples: List[DetDataSample]) -> List[Tensor]:
        for ds in batch_data_samples:
            if 'qc_query_embeddings' not in ds:
                raise KeyError(f"SPNet QC inference: sample {ds.metainfo.get('img_id')!r} "
                               'has no qc_query_embeddings (compute them with '
                               'predict_query_loc_embeddings on the query images)')
        return [ds.qc_query_embeddings for ds in batch_data_samples]

    def _add_embeddings(self, feats, results: List[InstanceData],
                        batch_data_samples: List[DetDataSample],
                        rescale: bool) -> List[DetDataSample]:
        """Re-id embeddings of detections, GT boxes and query boxes in one RoI pass."""
        boxes, counts = [], []
        for res, ds in zip(results, batch_data_samples):
            parts = [res.bboxes.float()]
            for field in ('gt_instances', 'query_instances'):
                inst = ds.get(field)
                parts.append(inst.bboxes.float() if inst is not None and 'bboxes' in inst
                             else res.bboxes.new_zeros((0, 4)))
            counts.append([p.shape[0] for p in parts])
            boxes.append(torch.cat(parts))
        embeds = self.roi_head.predict(feats, boxes)
        for res, ds, emb, cnt in zip(results, batch_data_samples, embeds, counts):
            det_emb, gt_emb, q_emb = emb.split(cnt)
            bboxes = res.bboxes
            if rescale and 'scale_factor' in ds.metainfo:
                scale = bboxes.new_tensor(ds.metainfo['scale_factor']).repeat(2)
                bboxes = bboxes / scale
            pred = InstanceData(bboxes=bboxes, scores=res.scores,
                                labels=torch.zeros_like(res.scores, dtype=torch.long),
                                embeddings=det_emb)
            if 'groups' in res:
                pred.query_inds = res.groups
                if 'qc_query_idx' in ds:
                    # the split's query row of each detection (QC records, §6.2)
                    pred.query_idx = ds.qc_query_idx.to(res.groups.device)[res.groups]
            ds.pred_instances = pred
            if ds.get('gt_instances') is not None and 'bboxes' in ds.gt_instances:
                ds.gt_embeddings = gt_emb
            if ds.get('query_instances') is not None and 'bboxes' in ds.query_instances:
                ds.query_embeddings = q_emb
        return batch_data_samples

    @torch.no_grad()
    def predict_query_loc_embeddings(self, inputs: Tensor,
                                     data_samples: List[DetDataSample]) -> List[Tensor]:
        """QC inference pass 1: loc embeddings (Q_i, d) of each sample's query boxes.

        The boxes are ``query_instances.bboxes`` in input coordinates; the stage-1 loc head
        (or the shared re-id head) embeds them on the sample's own features (§6.2).

        Args:
            inputs (Tensor): preprocessed images (N, 3, H, W).
            data_samples (list[DetDataSample]): with ``query_instances``.

        Returns:
            list[Tensor]: (Q_i, d) per sample.
        """
        feats = self.extract_feat(inputs)
        boxes = [ds.query_instances.bboxes.float() for ds in data_samples]
        counts = [b.shape[0] for b in boxes]
        if sum(counts) == 0:
            return [feats[0].new_zeros((0, self.roi_head.loc_dim)) for _ in counts]
        return list(self.roi_head.loc_embed(feats, bbox2roi(boxes), 1).split(counts))
