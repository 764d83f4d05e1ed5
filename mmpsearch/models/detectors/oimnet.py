# Copyright (c) mmpsearch contributors. All rights reserved.
"""OIMNet / OIMNet++ / OIMNet+++: mmdet's two-stage Faster R-CNN (R50-C4) with a re-id
branch in the RoI head (spec oimnetpp.md §1). Thin: training is mmdet's ``TwoStageDetector``
(RPN + :class:`~mmpsearch.models.roi_heads.OIMNetRoIHead`); ``predict`` adds the embeddings
of the annotated boxes and query boxes that the person-search metric needs
(docs/data_contract.md §2).
"""
from typing import Sequence

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.structures import SampleList
from torch import Tensor

from mmpsearch.registry import MODELS


@MODELS.register_module()
class OIMNet(TwoStageDetector):
    """Person-search Faster R-CNN with an OIM/LOIM re-id head.

    Args:
        frozen_parameters (list[str]): Name prefixes of parameters that get
            ``requires_grad=False`` (released: ``backbone.conv1.``, ``backbone.bn1.``; the
            frozen BN keeps updating its running statistics, unlike mmdet's
            ``frozen_stages``). Defaults to none.
        **kwargs: ``mmdet.TwoStageDetector`` arguments; ``roi_head`` must provide
            ``predict_box_embeddings`` (e.g. :class:`~mmpsearch.models.roi_heads.OIMNetRoIHead`).
    """

    def __init__(self, *args, frozen_parameters: Sequence[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for prefix in frozen_parameters:
            params = [p for name, p in self.named_parameters() if name.startswith(prefix)]
            if not params:
                raise ValueError(f'OIMNet: frozen_parameters prefix {prefix!r} matches no '
                                 'parameter')
            for p in params:
                p.requires_grad_(False)

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Detections with embeddings, plus GT-box and query-box embeddings.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) preprocessed images.
            batch_data_samples (list[DetDataSample]): With ``gt_instances`` and (test split)
                ``query_instances``, boxes in input pixels.
            rescale (bool): Predicted boxes in original image pixels. Defaults to True.

        Returns:
            list[DetDataSample]: Each with ``pred_instances`` (``bboxes``, ``scores``,
            ``labels``, ``embeddings``), ``gt_embeddings`` (N, D) in ``gt_instances`` order and
            ``query_embeddings`` (Q, D) in ``query_instances`` order.
        """
        x = self.extract_feat(batch_inputs)
        if batch_data_samples[0].get('proposals', None) is None:
            rpn_results_list = self.rpn_head.predict(x, batch_data_samples, rescale=False)
        else:
            rpn_results_list = [s.proposals for s in batch_data_samples]
        results_list = self.roi_head.predict(x, rpn_results_list, batch_data_samples,
                                             rescale=rescale)
        batch_data_samples = self.add_pred_to_datasample(batch_data_samples, results_list)

        # The query / GT embeddings use the annotated boxes in input coordinates (spec §1.8).
        def boxes_of(sample, field):
            inst = sample.get(field, None)
            if inst is None or 'bboxes' not in inst:
                return batch_inputs.new_zeros((0, 4))
            return inst.bboxes

        gt_emb = self.roi_head.predict_box_embeddings(
            x, [boxes_of(s, 'gt_instances') for s in batch_data_samples])
        query_emb = self.roi_head.predict_box_embeddings(
            x, [boxes_of(s, 'query_instances') for s in batch_data_samples])
        for sample, g, q in zip(batch_data_samples, gt_emb, query_emb):
            sample.gt_embeddings = g
            sample.query_embeddings = q
        return batch_data_samples

    @torch.no_grad()
    def extract_box_embeddings(self, batch_inputs: Tensor, boxes_list: list) -> list:
        """Embeddings of arbitrary boxes (e.g. an inferencer's query), in input pixels.

        Args:
            batch_inputs (Tensor): (B, 3, H, W) preprocessed images.
            boxes_list (list[Tensor]): Per image, (N_i, 4) boxes.

        Returns:
            list[Tensor]: Per image, (N_i, D).
        """
        return self.roi_head.predict_box_embeddings(self.extract_feat(batch_inputs),
                                                    boxes_list)
