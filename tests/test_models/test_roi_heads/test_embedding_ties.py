# Copyright (c) mmpsearch contributors. All rights reserved.
"""Identical detections get identical re-id embeddings, wherever they sit in the batch:
a GEMM's result for a row depends on the row's position in its block (with MKL, the
quick-start head's embeddings of one box at rows 0 and 4 of 5 differ by ~1e-7)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmpsearch.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


@pytest.fixture(scope='module')
def reid_head():
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/spnet/spnet-s_convnext-atto_quickstart_synthetic-prw.py'))
    torch.manual_seed(0)
    head = MODELS.build(cfg.model).roi_head
    return head.eval()


@pytest.mark.parametrize('num', [2, 3, 5, 9, 17, 40])
def test_identical_boxes_get_identical_embeddings(reid_head, num):
    torch.manual_seed(num)
    channels = reid_head.roi_extractor.out_channels
    feats = [torch.randn(2, channels, 40, 40)] * 5
    xy = torch.rand(num, 2) * 150
    boxes = torch.cat([xy, xy + 16 + torch.rand(num, 2) * 100], dim=1)
    boxes[-1] = boxes[0]  # the same detection twice, at both ends of the batch
    with torch.no_grad():
        emb, emb_other = reid_head.predict(feats, [boxes, boxes[:2]])
        alone = reid_head.predict(feats, [boxes[:1], boxes[:0]])[0]
    assert torch.equal(emb[0], emb[-1])
    assert emb_other.shape == (2, emb.shape[1])
    # the box in another image is another detection (other features)
    assert not torch.equal(emb_other[0], emb[0])
    torch.testing.assert_close(alone[0], emb[0], rtol=0, atol=1e-6)
