# Copyright (c) mmpsearch contributors. All rights reserved.
"""RoI pooling under mixed precision.

mmcv's RoIAlign kernels (CPU and CUDA, mmcv 2.1.0) exist for float32, float64 and float16
only; mmdet's ``SingleRoIExtractor`` casts the RoIs to the feature dtype. Under bfloat16
autocast (``AmpOptimWrapper(dtype='bfloat16')`` on an A100/H100, or CPU autocast) the
feature maps are bfloat16 and the op fails with ``"ROIAlign_forward" not implemented for
'BFloat16'``. The maps are then pooled in float32; the next layer runs in bfloat16 again
under autocast, and the gradient flows back through the cast. float16 and float32 maps are
pooled as they are (the cast would cost a copy of the map for nothing).

mmcv's RoIAlign also assumes NCHW-contiguous maps: given a channels-last map (e.g. a model
converted with ``model.to(memory_format=torch.channels_last)``) its CPU kernel reads the
memory as NCHW and silently pools the wrong values. Maps are therefore made contiguous
first (free for maps that already are).
"""
from typing import Sequence

import torch
from torch import Tensor, nn

# dtypes with a RoIAlign kernel in mmcv (AT_DISPATCH_FLOATING_TYPES_AND_HALF).
ROI_ALIGN_DTYPES = (torch.float16, torch.float32, torch.float64)


def extract_rois(extractor: nn.Module, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
    """Call an mmdet RoI extractor, in float32 when the maps' dtype has no RoIAlign kernel.

    Args:
        extractor (nn.Module): e.g. ``mmdet.SingleRoIExtractor`` with mmcv's ``RoIAlign``.
        feats (Sequence[Tensor]): the (B, C, H, W) maps the extractor takes.
        rois (Tensor): (R, 5) ``[batch_idx, x1, y1, x2, y2]``.

    Returns:
        Tensor: (R, C, h, w) pooled features, in the maps' dtype, or float32 for bfloat16
        maps.
    """
    if feats[0].dtype not in ROI_ALIGN_DTYPES:
        feats = [f.float() for f in feats]
    return extractor([f.contiguous() for f in feats], rois)
