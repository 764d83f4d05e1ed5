# Copyright (c) mmpsearch contributors. All rights reserved.
import torch
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

from mmpsearch.models.layers.roi_pooling import extract_rois


def _extractor():
    return SingleRoIExtractor(roi_layer=dict(type='RoIAlign', output_size=4, sampling_ratio=1),
                              out_channels=8, featmap_strides=[4])


def test_channels_last_maps_pool_like_nchw():
    # mmcv's CPU RoIAlign reads a channels-last map as if it were NCHW (wrong values, no
    # error); extract_rois hands it contiguous maps.
    torch.manual_seed(0)
    feat = torch.randn(2, 8, 16, 16)
    rois = torch.tensor([[0, 4., 4., 40., 50.], [1, 0., 8., 30., 60.]])
    extractor = _extractor()
    ref = extract_rois(extractor, [feat], rois)
    out = extract_rois(extractor, [feat.contiguous(memory_format=torch.channels_last)], rois)
    assert torch.equal(out, ref)


def test_bfloat16_maps_pool_in_float32():
    feat = torch.randn(1, 8, 16, 16)
    rois = torch.tensor([[0, 4., 4., 40., 50.]])
    extractor = _extractor()
    out = extract_rois(extractor, [feat.bfloat16()], rois)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, extract_rois(extractor, [feat.bfloat16().float()], rois))
