# Copyright (c) mmpsearch contributors. All rights reserved.
"""rrc2 / rrc_scale crops and the flip: output sizes, boxes and ids aligned (checked
against the recorded homography), the 40% visibility rule, both scale modes."""
import numpy as np
import pytest
from mmcv.transforms import Compose

from mmpsearch.datasets.transforms import (CenterPad, PersonSearchRandomFlip,
                                           RandomBBoxSafeCrop, RandomFocusedCrop,
                                           RandomPersonCrop)
from mmpsearch.datasets.transforms._geometry import crop_boxes

from ._helpers import apply_homography, boxes_of, make_results

CROP = 128
BOXES = [[20, 30, 80, 190], [150, 40, 210, 160], [240, 100, 290, 195], [100, 10, 125, 60]]


def _check_alignment(before, out, min_visibility=0.4):
    """Every output box is its input box (same id) mapped by the homography and clipped;
    dropped boxes kept < 40% of their (in-image) area."""
    h, w = out['img'].shape[:2]
    ids_in = before['gt_person_ids'].tolist()
    rel = np.asarray(out['homography_matrix'], np.float64) @ np.linalg.inv(
        np.asarray(before.get('homography_matrix', np.eye(3)), np.float64))
    mapped = apply_homography(rel, np.clip(
        boxes_of(before), 0, [before['img'].shape[1], before['img'].shape[0]] * 2))
    clipped = np.clip(mapped, 0, [w, h, w, h])
    area = np.prod(mapped[:, 2:] - mapped[:, :2], axis=1)
    vis = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1) / area
    got = boxes_of(out)
    for k, pid in enumerate(out['gt_person_ids'].tolist()):
        i = ids_in.index(pid)
        np.testing.assert_allclose(got[k], clipped[i], atol=1e-3)
        assert out['gt_person_labels'][k] == before['gt_person_labels'][i]
        assert out['gt_known'][k] == before['gt_known'][i]
    for i, pid in enumerate(ids_in):
        kept = pid in out['gt_person_ids'].tolist()
        assert kept == (vis[i] >= min_visibility - 1e-6), (pid, vis[i])
    n = len(out['gt_person_ids'])
    assert len(out['gt_bboxes']) == len(out['gt_bboxes_labels']) == len(out['gt_known']) == n
    return vis


def _copy(r):
    return {k: (v.clone() if hasattr(v, 'clone') else v.copy() if hasattr(v, 'copy') else v)
            for k, v in r.items()}


def test_center_pad():
    r = make_results(w=400, h=300)
    before, img = boxes_of(r), r['img'].copy()
    out = CenterPad(3 * 512)(r)
    assert out['img'].shape[:2] == (1536, 1536)
    left, top = (1536 - 400) // 2, (1536 - 300) // 2
    assert out['pad_offset'] == (left, top)
    np.testing.assert_allclose(boxes_of(out), before + [left, top, left, top])
    assert np.array_equal(out['img'][top:top + 300, left:left + 400], img)
    assert out['img'][0, 0].tolist() == [0, 0, 0]
    wide = CenterPad(200)(make_results(w=400, h=100))
    assert wide['img'].shape[:2] == (200, 400) and wide['pad_offset'] == (0, 50)


@pytest.mark.parametrize('seed', range(12))
def test_focused_crop(seed):
    np.random.seed(seed)
    r = CenterPad(3 * CROP)(make_results(w=300, h=200, known=[1, 1, 0, 1], seed=seed,
                                         boxes=BOXES))
    before = _copy(r)
    out = RandomFocusedCrop(CROP)(r)
    assert out['img'].shape[:2] == (CROP, CROP)
    vis = _check_alignment(before, out)
    known = before['gt_known']
    assert np.any(np.isclose(vis[known], 1.0))  # the focus box is fully inside the crop


def test_focused_crop_without_known_or_any_box():
    np.random.seed(0)
    r = make_results(w=300, h=200, known=[0, 0, 0, 0], boxes=BOXES)
    out = RandomFocusedCrop(CROP)(CenterPad(3 * CROP)(r))
    assert out['img'].shape[:2] == (CROP, CROP) and len(out['gt_bboxes']) >= 1
    empty = make_results(w=300, h=200, boxes=np.zeros((0, 4)))
    out = RandomFocusedCrop(CROP)(CenterPad(3 * CROP)(empty))
    assert out['img'].shape[:2] == (CROP, CROP) and len(out['gt_bboxes']) == 0


@pytest.mark.parametrize('seed', range(12))
def test_bbox_safe_crop(seed):
    np.random.seed(seed)
    r = CenterPad(3 * CROP)(make_results(w=300, h=200, seed=seed, boxes=BOXES))
    before = _copy(r)
    out = RandomBBoxSafeCrop(crop_size=CROP)(r)
    assert out['img'].shape[:2] == (CROP, CROP)
    vis = _check_alignment(before, out)
    assert np.all(vis >= 0.64 - 1e-6)  # each eroded box is inside: ≥ 0.8 × 0.8 kept
    empty = make_results(w=300, h=200, boxes=np.zeros((0, 4)))
    assert RandomBBoxSafeCrop(crop_size=CROP)(empty)['img'].shape[:2] == (CROP, CROP)


def test_min_visibility_rule():
    r = make_results(w=200, h=200, boxes=[[0, 0, 100, 100], [70, 0, 170, 100],
                                          [40, 0, 140, 100]],
                     queries=[[75, 0, 175, 100]])
    crop_boxes(r, (0, 0, 100, 200), 0.4, (200, 200))
    # box 0: 100% kept; box 1: 30% -> dropped; box 2: 60% -> kept (clipped)
    assert r['gt_person_ids'].tolist() == [100, 102]
    np.testing.assert_allclose(boxes_of(r), [[0, 0, 100, 100], [40, 0, 100, 100]])
    assert r['query_idx'].tolist() == [] and len(r['query_bboxes']) == 0


def test_random_person_crop_uses_both_crops():
    modes = set()
    for seed in range(20):
        np.random.seed(seed)
        r = CenterPad(3 * CROP)(make_results(w=300, h=200, seed=seed, boxes=BOXES))
        before = _copy(r)
        out = RandomPersonCrop(crop_size=CROP)(r)
        modes.add(out['crop_mode'])
        _check_alignment(before, out)
    assert modes == {'focused', 'bbox_safe'}


def test_flip_moves_gt_and_query_boxes():
    r = make_results(w=400, h=300, queries=[[150, 40, 210, 260]])
    before, qb, img = boxes_of(r), boxes_of(r, 'query_bboxes'), r['img'].copy()
    out = PersonSearchRandomFlip(prob=1.0)(r)
    assert out['flip'] and out['flip_direction'] == 'horizontal'
    np.testing.assert_allclose(boxes_of(out), np.stack(
        [400 - before[:, 2], before[:, 1], 400 - before[:, 0], before[:, 3]], 1))
    np.testing.assert_allclose(boxes_of(out, 'query_bboxes'),
                               [[400 - qb[0, 2], qb[0, 1], 400 - qb[0, 0], qb[0, 3]]])
    assert out['gt_person_ids'].tolist() == [100, 101, 102, 103]
    assert np.array_equal(out['img'], img[:, ::-1])


@pytest.mark.parametrize('recipe', ['rrc2', 'rrc_scale_released', 'rrc_scale_paper'])
def test_full_recipes_keep_alignment(recipe):
    if recipe == 'rrc2':
        first = [dict(type='WindowResize', short_side=180, long_side=300),
                 dict(type='CenterPad', size=3 * CROP)]
    else:
        first = [dict(type='RandomScale', scale_mode=recipe.split('_')[-1]),
                 dict(type='CenterPad', size=4 * CROP)]
    pipe = Compose(first + [dict(type='RandomPersonCrop', crop_size=CROP),
                            dict(type='PersonSearchRandomFlip', prob=0.5)])
    flips = set()
    for seed in range(10):
        np.random.seed(seed)
        # the last box crosses the image border: it is clamped before any crop
        r = make_results(w=300, h=200, seed=seed, boxes=[[20, 30, 80, 190], [150, 40, 210, 160],
                                                         [240, 100, 330, 230]])
        before = _copy(r)
        out = pipe(r)
        assert out['img'].shape[:2] == (CROP, CROP)
        flips.add(bool(out['flip']))
        _check_alignment(before, out)
    assert flips == {True, False}
