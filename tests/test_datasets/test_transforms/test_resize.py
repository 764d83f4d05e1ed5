# Copyright (c) mmpsearch contributors. All rights reserved.
"""``WindowResize`` (wrs) and ``RandomScale`` (rrc_scale step 1): sizes from spnet.md §4.2,
boxes and query boxes scaled with the image."""
import numpy as np
import pytest

from mmpsearch.datasets.transforms import RandomScale, WindowResize

from ._helpers import boxes_of, make_results


@pytest.mark.parametrize('size,expect', [
    ((1920, 1080), (1500, 844)),  # PRW HD frame (spnet.md §4.2)
    ((720, 576), (1125, 900)),  # PRW camera 6: short side 900, long side 1125 <= 1500
    ((600, 800), (900, 1200)),  # portrait
    ((3000, 1000), (1500, 500)),  # long side capped at 1500
])
def test_window_resize_sizes(size, expect):
    assert WindowResize(900, 1500).target_size(*size) == expect


def test_window_resize_moves_boxes_and_queries():
    r = make_results(w=400, h=300, queries=[[150, 40, 210, 260]])
    before, qbefore = boxes_of(r), boxes_of(r, 'query_bboxes')
    out = WindowResize(900, 1500)(r)
    assert out['img'].shape[:2] == (900, 1200) and out['img_shape'] == (900, 1200)
    sx, sy = out['scale_factor']
    assert (sx, sy) == (3.0, 3.0)
    np.testing.assert_allclose(boxes_of(out), before * 3.0, rtol=1e-6)
    np.testing.assert_allclose(boxes_of(out, 'query_bboxes'), qbefore * 3.0, rtol=1e-6)
    assert out['gt_person_ids'].tolist() == [100, 101, 102, 103]


@pytest.mark.parametrize('mode,low,high', [('released', 1.5, 3.0), ('paper', 0.5, 2.0)])
def test_random_scale_modes(mode, low, high):
    t = RandomScale(scale_mode=mode)
    np.random.seed(0)
    factors = []
    for _ in range(200):
        r = make_results(w=40, h=30, boxes=[[4, 3, 20, 27]])
        out = t(r)
        s = out['random_scale']
        assert low <= s <= high
        assert out['img'].shape[:2] == (int(30 * s), int(40 * s))  # albumentations truncates
        np.testing.assert_allclose(boxes_of(out), [[4 * int(40 * s) / 40, 3 * int(30 * s) / 30,
                                                     20 * int(40 * s) / 40,
                                                     27 * int(30 * s) / 30]], rtol=1e-5)
        factors.append(s)
    assert min(factors) < low + 0.1 * (high - low) and max(factors) > high - 0.1 * (high - low)


def test_random_scale_arguments():
    assert RandomScale(scale_range=(1.0, 1.0)).scale_range == (1.0, 1.0)
    with pytest.raises(ValueError, match='scale_mode'):
        RandomScale(scale_mode='albumentations')
    with pytest.raises(ValueError, match='scale_range'):
        RandomScale(scale_range=(2.0, 1.0))
