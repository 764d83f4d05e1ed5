# Copyright (c) mmpsearch contributors. All rights reserved.
"""Galleries per protocol from ``search_protocol``; fingerprints; metadata checks."""
import copy

import numpy as np
import pytest

from mmpsearch.evaluation.protocols import (build_search_galleries, data_fingerprint,
                                            protocol_fingerprint, validate_search_protocol)
from mmpsearch.evaluation.toy_data import hand_case, random_case

B1, B2, B3 = [0, 0, 10, 20], [5, 5, 15, 25], [30, 0, 40, 20]


def quirky():
    """One CUHK-style query whose list repeats an image (same box, then another box),
    holds the query's own image, and an image whose first listing has no target."""
    images = [dict(name=n, gts=[(B1, 1), (B2, 1)] if n != 'n.jpg' else [(B3, 2)])
              for n in ('q.jpg', 'a.jpg', 'b.jpg', 'n.jpg', 'c.jpg')]
    rows = [dict(query=0, gallery=[('a.jpg', B1), ('q.jpg', B2), ('a.jpg', B1), ('b.jpg', B1),
                                   ('b.jpg', B2), ('n.jpg', None), ('c.jpg', None),
                                   ('c.jpg', B1)])]
    return hand_case(images, [dict(image='q.jpg', box=B1, pid=1)],
                     dict(G=dict(kind='listed', rows=rows))).search_protocol


def test_listed_released_rules():
    g = build_search_galleries(quirky())['G']
    # distinct images in first-listing order, with their first slot
    assert g.gal_images.tolist() == [1, 0, 2, 3, 4]
    assert g.gal_slots.tolist() == [0, 1, 3, 5, 6]
    # every listing with a target counts (a twice, b twice, q once, c's second listing)
    assert g.count_gt.tolist() == [6]
    # labels come from an image's first listing: c's first listing has none
    assert g.tgt_images.tolist() == [1, 0, 2]
    np.testing.assert_array_equal(g.tgt_boxes, [B1, B2, B1])


def test_listed_dedup_and_exclude_query_image():
    g = build_search_galleries(quirky(), duplicate_gallery='dedup')['G']
    assert g.count_gt.tolist() == [4]  # a, q, b, c once each
    assert g.tgt_images.tolist() == [1, 0, 2, 4]  # c labelled by its listing with a box
    g = build_search_galleries(quirky(), exclude_query_image=True)['G']
    assert 0 not in g.gal_images.tolist() and g.count_gt.tolist() == [5]


def prw():
    images = [dict(name='c1s1_0.jpg', cam=1, gts=[(B1, 7)]),
              dict(name='c1s1_1.jpg', cam=1, gts=[(B3, 2), (B1, 7), (B2, 7)]),
              dict(name='c2s1_2.jpg', cam=2, gts=[(B2, 7)]),
              dict(name='c2s1_3.jpg', cam=2, gts=[(B2, -1)])]
    return hand_case(images, [dict(image='c1s1_0.jpg', box=B1, pid=7)],
                     dict(standard=dict(kind='all_but_query', cross_camera=False),
                          multi_view=dict(kind='all_but_query', cross_camera=True)),
                     'PRW').search_protocol


def test_all_but_query_targets():
    g = build_search_galleries(prw())
    assert g['standard'].tgt_images.tolist() == [1, 2]
    np.testing.assert_array_equal(g['standard'].tgt_boxes, [B1, B2])  # first box of pid 7
    assert g['standard'].count_gt.tolist() == [2]
    assert g['multi_view'].tgt_images.tolist() == [2]
    assert g['multi_view'].count_gt.tolist() == [1]


def test_unknown_protocol_name():
    with pytest.raises(KeyError, match='not in this dataset'):
        build_search_galleries(prw(), ['G100'])


def test_fingerprints():
    sp = random_case(np.random.default_rng(0), 'CUHK-SYSU').search_protocol
    fp, dfp = protocol_fingerprint(sp), data_fingerprint(sp)
    other = copy.deepcopy(sp)
    other['gt_offsets'] = other['gt_offsets'].astype(np.int32)  # same values
    other['protocols'] = {k: dict(v) for k, v in reversed(list(other['protocols'].items()))}
    assert protocol_fingerprint(other) == fp and data_fingerprint(other) == dfp
    other['protocols']['G10']['pos_bboxes'] = other['protocols']['G10']['pos_bboxes'] + 1
    assert protocol_fingerprint(other) != fp and data_fingerprint(other) == dfp
    other['gt_bboxes'] = other['gt_bboxes'] + 0.5
    assert data_fingerprint(other) != dfp


@pytest.mark.parametrize('breakage, match', [
    (lambda sp: sp.pop('gt_bboxes'), 'lacks'),
    (lambda sp: sp.__setitem__('gt_offsets', sp['gt_offsets'][:-1]), 'gt_offsets'),
    (lambda sp: sp.__setitem__('query_image_idx', sp['query_image_idx'] + 1000),
     'query_image_idx'),
    (lambda sp: sp['protocols']['G10'].__setitem__('kind', 'random'), 'unknown kind'),
    (lambda sp: sp['protocols']['G10'].__setitem__(
        'gallery_image_idx', sp['protocols']['G10']['gallery_image_idx'] + 10**6),
     'out of range'),
])
def test_validation_errors(breakage, match):
    sp = copy.deepcopy(random_case(np.random.default_rng(1), 'CUHK-SYSU').search_protocol)
    breakage(sp)
    with pytest.raises(ValueError, match=match):
        validate_search_protocol(sp)
