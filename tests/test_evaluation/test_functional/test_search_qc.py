# Copyright (c) mmpsearch contributors. All rights reserved.
"""Query-centric search and detection metrics (spnet.md §6.2) against the plain loop
oracle run query by query on each query's own detections."""
import numpy as np
import pytest

from mmpsearch.evaluation.functional import DetectionSet, evaluate_detection
from mmpsearch.evaluation.functional.reference import reference_search
from mmpsearch.evaluation.functional.search_qc import (evaluate_detection_qc,
                                                       evaluate_search_qc, take_queries)
from mmpsearch.evaluation.protocols import build_search_galleries, query_set
from mmpsearch.evaluation.toy_data import random_case


def qc_detections(case, rng):
    """Per (query, image): a random subset of the image's detections with the query's
    own score and feature jitter, so every query sees different detections."""
    sp = case.search_protocol
    n_q, n_img = len(sp['query_image_idx']), len(sp['image_ids'])
    per_query = []  # per query, per image (boxes, scores, feats)
    for _ in range(n_q):
        imgs = []
        for i in range(n_img):
            b, s, f = case.det_bboxes[i], case.det_scores[i], case.det_feats[i]
            keep = rng.random(len(b)) < 0.7
            jitter = rng.normal(0, 0.05, (int(keep.sum()), f.shape[1])).astype(f.dtype)
            imgs.append((b[keep] + rng.normal(0, 1, (int(keep.sum()), 4)),
                         np.clip(s[keep] + rng.normal(0, 0.1, int(keep.sum())), 0, 1),
                         f[keep] + jitter))
        per_query.append(imgs)
    # records layout: per image, all queries' detections with their query row
    boxes, scores, feats, det_query, counts = [], [], [], [], []
    for i in range(n_img):
        n = 0
        for q in range(n_q):
            b, s, f = per_query[q][i]
            boxes.append(b), scores.append(s), feats.append(f)
            det_query.append(np.full(len(b), q))
            n += len(b)
        counts.append(n)
    dets = DetectionSet(np.r_[0, np.cumsum(counts)], np.concatenate(boxes),
                        np.concatenate(scores), np.concatenate(feats))
    return per_query, dets, np.concatenate(det_query)


@pytest.mark.parametrize('seed', range(24))
def test_qc_search_matches_oracle_per_query(seed):
    rng = np.random.default_rng(500 + seed)
    kind = 'PRW' if seed % 2 else 'CUHK-SYSU'
    quantize = seed % 3 == 0
    case = random_case(rng, kind=kind, quantize=quantize, dim=6 if quantize else 12,
                       num_images=int(rng.integers(6, 20)), num_ids=int(rng.integers(2, 6)),
                       gt_per_image=(0, 3), dets_per_image=(0, 5),
                       num_queries=int(rng.integers(1, 7)), gallery_sizes=(4, 8),
                       num_cams=3, dup_prob=0.3, own_image_prob=0.2)
    sp = case.search_protocol
    per_query, dets, det_query = qc_detections(case, rng)
    keep = dets.scores >= 0.5
    tie = ('reversed', 'stable')[seed % 2]
    gal = build_search_galleries(sp)
    res = evaluate_search_qc(query_set(sp, case.query_feats), dets.select(keep),
                             det_query[keep], list(gal.values()), sp['image_cams'], tie)
    for name, g in gal.items():
        for qi, row in enumerate(g.query_rows):
            b, s, f = zip(*per_query[row])
            ref = reference_search(sp, name, case.query_feats, b, s, f, tie_order=tie,
                                   rows=[qi])
            assert abs(res[name].ap[qi] - ref['ap'][0]) <= 1e-9, (name, qi)
            np.testing.assert_array_equal(res[name].topk[qi], ref['topk'][0])
            assert res[name].count_gt[qi] == ref['count_gt'][0]
            assert res[name].count_tp[qi] == ref['count_tp'][0]
            assert res[name].num_items[qi] == ref['num_items'][0]


def test_take_queries_keeps_each_querys_gallery():
    rng = np.random.default_rng(3)
    case = random_case(rng, kind='CUHK-SYSU', num_images=12, num_queries=5,
                       gallery_sizes=(6,), dup_prob=0.3)
    g = build_search_galleries(case.search_protocol)['G6']
    sub = take_queries(g, [3, 1])
    assert sub.query_rows.tolist() == g.query_rows[[3, 1]].tolist()
    for k, qi in enumerate((3, 1)):
        for a, b in ((sub.gal_offsets, g.gal_offsets), (sub.tgt_offsets, g.tgt_offsets)):
            assert a[k + 1] - a[k] == b[qi + 1] - b[qi]
        np.testing.assert_array_equal(sub.gal_images[sub.gal_offsets[k]:sub.gal_offsets[k + 1]],
                                      g.gal_images[g.gal_offsets[qi]:g.gal_offsets[qi + 1]])


def test_qc_detection_is_the_oc_metric_per_pair():
    """Three images, two queries; pairs scored against the query person's box only."""
    sp_gt = {0: [10, 10, 50, 90], 1: [100, 20, 140, 110]}
    # query 0 (identity A) in image 0; query 1 (identity B) in image 2.
    # PRW-like gallery: all images but the query's own. A is in image 1, B in image 1.
    from mmpsearch.evaluation.functional import SearchGallery
    g = SearchGallery('standard', 'all_but_query', np.array([0, 1]), np.array([1, 1]),
                      np.array([0, 1, 2]), np.array([1, 1]),
                      np.array([sp_gt[0], sp_gt[1]], np.float64))
    q_img = np.array([0, 2])
    # detections: image 1 for query 0: a hit on A and a false positive on B's box;
    # image 2 for query 0: one false positive; image 1 for query 1: a miss (IoU < 0.5);
    # image 2 for query 1: the query's own image, not in its gallery (ignored)
    boxes = np.array([[11, 11, 50, 90], [100, 20, 140, 110], [0, 0, 20, 20],
                      [100, 80, 140, 160], [0, 0, 5, 5]], np.float64)
    scores = np.array([0.9, 0.95, 0.6, 0.8, 0.99])
    img = np.array([1, 1, 2, 1, 2])
    det_query = np.array([0, 0, 0, 1, 1])
    order = np.argsort(img, kind='stable')
    dets = DetectionSet(np.r_[0, np.cumsum(np.bincount(img, minlength=3))], boxes[order],
                        scores[order], np.zeros((5, 2)))
    out = evaluate_detection_qc(g, dets, det_query[order], q_img)
    # 2 target occurrences, 1 found; ranked dets (0.95 FP, 0.9 TP, 0.8 FP, 0.6 FP)
    assert out['num_gt'] == 2 and out['num_tp'] == 1 and out['num_dets'] == 4
    assert out['recall'] == 0.5
    ref = evaluate_detection(np.array([0, 1, 2, 2]), np.array([sp_gt[0], sp_gt[1]], float),
                             DetectionSet(np.array([0, 2, 3, 4]), boxes[[0, 1, 3, 2]],
                                          scores[[0, 1, 3, 2]], np.zeros((4, 2))))
    assert out['ap'] == pytest.approx(ref['ap']) and out['ap'] == pytest.approx(0.5 * 0.5)
