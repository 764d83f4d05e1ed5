# Copyright (c) mmpsearch contributors. All rights reserved.
"""Dense anchors with torchvision semantics (spnet.md §2, §3.2)."""
import math

import torch

from mmpsearch.models.layers import SizedAnchorGenerator, octave_sizes
from mmpsearch.registry import TASK_UTILS

SPEC_SIZES = [[32, 40, 50], [64, 80, 101], [128, 161, 203], [256, 322, 406],
              [512, 645, 812]]


def _gen(**kw):
    return TASK_UTILS.build(dict(type='SizedAnchorGenerator', strides=[8, 16, 32, 64, 128],
                                 sizes=SPEC_SIZES, ratios=[0.5, 1.0, 2.0], **kw))


def _fpn_sizes(h, w):
    """Feature sizes of P3..P7: /8, /16, /32 exact; P6, P7 by 3x3 stride-2 convs, pad 1."""
    sizes = [(h // 8, w // 8), (h // 16, w // 16), (h // 32, w // 32)]
    for _ in range(2):
        ph, pw = sizes[-1]
        sizes.append(((ph - 1) // 2 + 1, (pw - 1) // 2 + 1))
    return sizes


def test_octave_sizes_match_spec():
    assert octave_sizes() == SPEC_SIZES


def test_base_anchors_follow_torchvision_formula():
    gen = _gen()
    for level, sizes in enumerate(SPEC_SIZES):
        expected = []
        for ratio in (0.5, 1.0, 2.0):  # ratio-major, size-minor
            h_ratio = math.sqrt(ratio)
            for size in sizes:
                ws, hs = size / h_ratio, size * h_ratio
                expected.append([round(-ws / 2), round(-hs / 2), round(ws / 2), round(hs / 2)])
        assert torch.equal(gen.base_anchors[level], torch.tensor(expected, dtype=torch.float))


def test_anchor_counts_from_spec():
    gen = _gen()
    anchors = gen.grid_priors(_fpn_sizes(512, 512), pad_shape=(512, 512))
    assert sum(a.shape[0] for a in anchors) == 49104
    assert gen.num_anchors((512, 512)) == 49104
    assert sum(a.shape[0] for a in gen.grid_priors(_fpn_sizes(1024, 1024))) == 196416
    # 1500 x 844 PRW frame padded to 1504 x 864.
    assert sum(a.shape[0] for a in gen.grid_priors(_fpn_sizes(864, 1504))) == 243621


def test_location_major_order_and_strides_from_image():
    gen = _gen()
    sizes = _fpn_sizes(864, 1504)
    level6 = gen.grid_priors(sizes, pad_shape=(864, 1504))[3]
    h6, w6 = sizes[3]
    assert (h6, w6) == (14, 24)
    # torchvision strides: padded size // feature size -> (1504 // 24, 864 // 14) = (62, 61).
    centres = (level6[:, :2] + level6[:, 2:]) / 2
    assert torch.equal(centres[9 * 1], torch.tensor([62., 0.]))       # location (0, 1)
    assert torch.equal(centres[9 * w6], torch.tensor([0., 61.]))      # location (1, 0)
    nominal = _gen(strides_from_image=False).grid_priors(sizes, pad_shape=(864, 1504))[3]
    assert torch.equal(((nominal[:, :2] + nominal[:, 2:]) / 2)[9 * w6], torch.tensor([0., 64.]))
    # The 9 anchors of a location share its centre.
    assert torch.equal(centres[:9], torch.zeros(9, 2))
