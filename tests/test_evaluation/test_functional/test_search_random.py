# Copyright (c) mmpsearch contributors. All rights reserved.
"""The vectorised search evaluation equals the plain loop oracle on random cases.

240 random cases cover: PRW (all cameras and cross-camera) and CUHK-SYSU listed
galleries; small-integer embeddings (exact similarities, ties everywhere) and continuous
ones; images without detections or annotations; repeated gallery images (same or another
box) and the query's own image in its gallery; queries whose identity is in no gallery
image; both tie orders, both duplicate rules, CBGM; the GT-box ("ReID") evaluation; tiny
and default histogram resolutions and chunk sizes. Two more cases use the six CUHK-SYSU
gallery sizes 50 … 4000 on a 4,100-image split.
"""
import numpy as np
import pytest

from mmpsearch.evaluation.functional import CBGMOptions, DetectionSet, evaluate_search
from mmpsearch.evaluation.functional.reference import reference_search
from mmpsearch.evaluation.protocols import build_search_galleries, query_set
from mmpsearch.evaluation.toy_data import random_case


def det_set(case, thr=0.5):
    offs = np.r_[0, np.cumsum([len(b) for b in case.det_bboxes])]
    return DetectionSet(offs, np.concatenate(case.det_bboxes), np.concatenate(case.det_scores),
                        np.concatenate(case.det_feats)).above(thr)


def gt_set(case):
    sp = case.search_protocol
    return DetectionSet(sp['gt_offsets'], sp['gt_bboxes'], np.ones(len(sp['gt_bboxes'])),
                        case.gt_feats)


def compare(case, dets, ref_dets, opts, cbgm=None, chunk_size=128, num_buckets=8192):
    sp = case.search_protocol
    gal = build_search_galleries(sp, duplicate_gallery=opts['duplicate_gallery'],
                                 exclude_query_image=opts['exclude_query_image'])
    fast = evaluate_search(query_set(sp, case.query_feats), dets, list(gal.values()),
                           sp['image_cams'], tie_order=opts['tie_order'], cbgm=cbgm,
                           chunk_size=chunk_size, num_buckets=num_buckets)
    for name, res in fast.items():
        ref = reference_search(
            sp, name, case.query_feats, *ref_dets, cbgm=None if cbgm is None else dict(
                k1=cbgm.k1, k2=cbgm.k2, context_iou=cbgm.context_iou), **opts)
        assert np.abs(res.ap - ref['ap']).max(initial=0) <= 1e-9, name
        np.testing.assert_array_equal(res.topk, ref['topk'], err_msg=name)
        np.testing.assert_array_equal(res.count_tp, ref['count_tp'], err_msg=name)
        np.testing.assert_array_equal(res.count_gt, ref['count_gt'], err_msg=name)
        np.testing.assert_array_equal(res.num_items, ref['num_items'], err_msg=name)
    return fast


@pytest.mark.parametrize('seed', range(240))
def test_random_case_matches_oracle(seed):
    rng = np.random.default_rng(1000 + seed)
    kind = 'PRW' if seed % 2 else 'CUHK-SYSU'
    quantize = seed % 3 == 0
    sparse = seed % 11 == 5
    case = random_case(rng, kind=kind, quantize=quantize, dim=6 if quantize else 12,
                       num_images=int(rng.integers(8, 40)), num_ids=int(rng.integers(2, 9)),
                       gt_per_image=(0, 4), dets_per_image=(0, 1) if sparse else (0, 7),
                       num_queries=int(rng.integers(1, 12)), gallery_sizes=(5, 12),
                       num_cams=int(rng.integers(1, 5)), dup_prob=0.35, own_image_prob=0.2,
                       orphan_queries=int(seed % 4 == 1), low_score=0.7 if sparse else 0.2)
    opts = dict(tie_order=('reversed', 'stable')[(seed // 2) % 2],
                duplicate_gallery=('released', 'dedup')[(seed // 4) % 2],
                exclude_query_image=seed % 7 == 3)
    cbgm = CBGMOptions(k1=int(rng.integers(1, 6)), k2=int(rng.integers(1, 4)),
                       context_iou=0.4) if seed % 5 == 2 else None
    chunk = int(rng.integers(1, 9)) if seed % 2 else 128
    buckets = (16, 64, 8192)[seed % 3]
    refd = (case.det_bboxes, case.det_scores, case.det_feats)
    compare(case, det_set(case), refd, opts, cbgm, chunk, buckets)
    if seed % 4 == 0:  # the GT-box evaluation: annotated boxes with score 1
        sp = case.search_protocol
        off = sp['gt_offsets']
        n = len(off) - 1
        refg = ([sp['gt_bboxes'][off[i]:off[i + 1]] for i in range(n)],
                [np.ones(off[i + 1] - off[i]) for i in range(n)],
                [case.gt_feats[off[i]:off[i + 1]] for i in range(n)])
        compare(case, gt_set(case), refg, opts, None, chunk, buckets)


@pytest.mark.parametrize('seed', range(2))
def test_all_cuhk_gallery_sizes(seed):
    rng = np.random.default_rng(7 + seed)
    case = random_case(rng, kind='CUHK-SYSU', num_images=4100, num_ids=40, gt_per_image=(0, 2),
                       dets_per_image=(0, 2), dim=8, num_queries=4, quantize=bool(seed),
                       gallery_sizes=(50, 100, 500, 1000, 2000, 4000), dup_prob=0.5,
                       own_image_prob=0.5)
    opts = dict(tie_order='reversed', duplicate_gallery='released', exclude_query_image=False)
    fast = compare(case, det_set(case), (case.det_bboxes, case.det_scores, case.det_feats),
                   opts, chunk_size=3)
    assert {'G50', 'G100', 'G500', 'G1000', 'G2000', 'G4000'} <= set(fast)


@pytest.mark.parametrize('kind', ['PRW', 'CUHK-SYSU'])
def test_several_detection_sets_share_tables(kind):
    from mmpsearch.evaluation.functional import evaluate_search_sets
    case = random_case(np.random.default_rng(3), kind=kind, num_images=30, num_queries=9,
                       dup_prob=0.3)
    sp = case.search_protocol
    gal = list(build_search_galleries(sp).values())
    qs = query_set(sp, case.query_feats)
    both = evaluate_search_sets(qs, {'det': det_set(case), 'gt': gt_set(case)}, gal,
                                sp['image_cams'], chunk_size=4)
    for name, dets in (('det', det_set(case)), ('gt', gt_set(case))):
        alone = evaluate_search(qs, dets, gal, sp['image_cams'], chunk_size=4)
        for p, res in alone.items():
            np.testing.assert_array_equal(both[name][p].ap, res.ap)
            np.testing.assert_array_equal(both[name][p].topk, res.topk)
