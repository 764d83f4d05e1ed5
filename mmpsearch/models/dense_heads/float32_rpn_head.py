# Copyright (c) mmpsearch contributors. All rights reserved.
"""mmdet's ``RPNHead`` with its loss and proposals computed in float32 under AMP.

Under autocast the RPN convolutions return float16/bfloat16 maps, and mmdet then generates
the anchors in that dtype (``grid_priors(dtype=cls_scores[0].dtype)``) and decodes the
proposals from them. In bfloat16 (8 bits of mantissa) an anchor corner near x = 1500 moves
in steps of 8 px, in float16 of 1 px above 1024; and on the CPU, where autocast does not
promote ``exp`` to float32 as CUDA autocast does, the boxes reach mmcv's NMS in that dtype,
whose kernels take float32 boxes only ("expected scalar type Float but found BFloat16").
This head casts the (small) RPN outputs to float32 before the loss and the proposal
post-processing, which is what CUDA autocast does for the loss anyway; the convolutions
keep running in reduced precision.
"""
from typing import List

from mmdet.models.dense_heads import RPNHead
from torch import Tensor

from mmpsearch.registry import MODELS


def _float(maps: List[Tensor]) -> List[Tensor]:
    return [m.float() for m in maps]


@MODELS.register_module()
class Float32RPNHead(RPNHead):
    """``mmdet.RPNHead`` whose ``loss_by_feat`` and ``predict_by_feat`` run in float32.

    Same arguments, parameters and state-dict keys as ``mmdet.RPNHead`` (checkpoints load
    either way); identical results in float32.
    """

    def loss_by_feat(self, cls_scores: List[Tensor], bbox_preds: List[Tensor], *args,
                     **kwargs) -> dict:
        return super().loss_by_feat(_float(cls_scores), _float(bbox_preds), *args, **kwargs)

    def predict_by_feat(self, cls_scores: List[Tensor], bbox_preds: List[Tensor], *args,
                        **kwargs):
        return super().predict_by_feat(_float(cls_scores), _float(bbox_preds), *args,
                                       **kwargs)
