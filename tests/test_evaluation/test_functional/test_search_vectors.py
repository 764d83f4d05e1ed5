# Copyright (c) mmpsearch contributors. All rights reserved.
"""The hand-computed test vectors TV1–TV9 of oimnetpp.md §9, through the fast code, the
loop oracle and the metric. Query feature [1, 0]; a gallery detection "sim s" has the
feature [s, sqrt(1 - s^2)]; boxes are xyxy."""
import numpy as np
import pytest

from mmpsearch.evaluation import PersonSearchMetric
from mmpsearch.evaluation.functional import (DetectionSet, evaluate_detection,
                                             evaluate_search)
from mmpsearch.evaluation.functional.reference import (reference_detection,
                                                       reference_search)
from mmpsearch.evaluation.protocols import build_search_galleries, query_set
from mmpsearch.evaluation.toy_data import hand_case

BOX = [10, 10, 50, 110]
FAR = [200, 10, 240, 110]
QIMG = dict(name='q.jpg', gts=[([300, 300, 340, 400], 1)])


def tv1_images(prefix='', g3_score=0.95):
    return [
        dict(name=f'{prefix}g1.jpg', gts=[(BOX, 1)], dets=[(BOX, 0.99, 0.9), (FAR, 0.95, 0.3)]),
        dict(name=f'{prefix}g2.jpg', gts=[(BOX, 2)], dets=[(BOX, 0.97, 0.8)]),
        dict(name=f'{prefix}g3.jpg', gts=[(BOX, 1)],
             dets=[([12, 12, 52, 112], g3_score, 0.6)]),
    ]


def tv1_gallery(prefix=''):
    return [(f'{prefix}g1.jpg', BOX), (f'{prefix}g2.jpg', None), (f'{prefix}g3.jpg', BOX)]


def tv3_images(prefix=''):
    gt = [100, 100, 110, 120]
    return [
        dict(name=f'{prefix}h1.jpg', gts=[(gt, 1)],
             dets=[([100, 108, 110, 128], 0.9, 0.7), (gt, 0.9, 0.5)]),
        dict(name=f'{prefix}h2.jpg', gts=[(BOX, 3)], dets=[(FAR, 0.9, 0.8)]),
    ], [(f'{prefix}h1.jpg', gt), (f'{prefix}h2.jpg', None)]


def listed(images, rows):
    return hand_case([QIMG] + images,
                     [dict(image='q.jpg', box=[300, 300, 340, 400], pid=1)] * len(rows),
                     dict(P=dict(kind='listed', rows=rows)))


def evaluate(case, name='P', **kw):
    """(fast SearchResult, oracle dict) of protocol ``name``."""
    sp = case.search_protocol
    offs = np.r_[0, np.cumsum([len(b) for b in case.det_bboxes])]
    dets = DetectionSet(offs, np.concatenate(case.det_bboxes), np.concatenate(case.det_scores),
                        np.concatenate(case.det_feats)).above(0.5)
    gal = build_search_galleries(sp, [name])
    fast = evaluate_search(query_set(sp, case.query_feats), dets, list(gal.values()),
                           sp['image_cams'], **kw)[name]
    ref = reference_search(sp, name, case.query_feats, case.det_bboxes, case.det_scores,
                           case.det_feats, **kw)
    return fast, ref


def check(case, ap, topk, name='P', **kw):
    fast, ref = evaluate(case, name, **kw)
    for got in (fast.ap, ref['ap']):
        np.testing.assert_allclose(got, ap, rtol=0, atol=1e-12)
    for got in (fast.topk, ref['topk']):
        np.testing.assert_array_equal(np.asarray(got, float), np.asarray(topk, float))
    return fast


def test_tv1_basic_cuhk():
    fast = check(listed(tv1_images(), [dict(query=0, gallery=tv1_gallery())]), [5 / 6],
                 [[1, 1, 1]])
    assert fast.count_gt.tolist() == [2] and fast.count_tp.tolist() == [2]


def test_tv2_unkept_detection_still_counts_in_recall():
    fast = check(listed(tv1_images(g3_score=0.40), [dict(query=0, gallery=tv1_gallery())]),
                 [0.5], [[1, 1, 1]])
    assert fast.count_gt.tolist() == [2] and fast.count_tp.tolist() == [1]


def test_tv3_small_target_threshold_and_most_similar_only():
    images, gallery = tv3_images()
    check(listed(images, [dict(query=0, gallery=gallery)]), [0.5], [[0, 1, 1]])


def test_tv4_rank_seven():
    images = [dict(name=f'n{k}.jpg', gts=[(FAR, 5)], dets=[(BOX, 0.9, s)])
              for k, s in enumerate([0.90, 0.85, 0.80, 0.75, 0.70, 0.65])]
    images.append(dict(name='t.jpg', gts=[(BOX, 1)], dets=[(BOX, 0.9, 0.5)]))
    gallery = [(f'n{k}.jpg', None) for k in range(6)] + [('t.jpg', BOX)]
    check(listed(images, [dict(query=0, gallery=gallery)]), [1 / 7], [[0, 0, 1]])


def test_tv5_no_true_positive():
    images = [dict(name='g1.jpg', gts=[(BOX, 1)], dets=[([300, 300, 340, 400], 0.9, 0.9)])]
    check(listed(images, [dict(query=0, gallery=[('g1.jpg', BOX)])]), [0.0], [[0, 0, 0]])


def test_tv6_two_queries_mean():
    images3, gallery3 = tv3_images('b')
    case = listed(tv1_images('a') + images3,
                  [dict(query=0, gallery=tv1_gallery('a')), dict(query=1, gallery=gallery3)])
    fast = check(case, [5 / 6, 0.5], [[1, 1, 1], [0, 1, 1]])
    assert fast.ap.mean() == pytest.approx(2 / 3, abs=1e-12)
    # and through the metric
    metric = PersonSearchMetric(gt_reid=False, detection=False)
    metric.dataset_meta = dict(search_protocol=case.search_protocol)
    out = metric.compute_metrics(case.records())
    assert out['P/mAP'] == pytest.approx(2 / 3, abs=1e-12)
    assert (out['P/top1'], out['P/top5'], out['P/top10']) == (0.5, 1.0, 1.0)


def tv7_case():
    images = [dict(name='g1.jpg', gts=[(BOX, 1)], dets=[(BOX, 0.9, 0.5), (FAR, 0.9, 0.2)]),
              dict(name='g2.jpg', gts=[(BOX, 4)], dets=[(BOX, 0.9, 0.5)])]
    return listed(images, [dict(query=0, gallery=[('g1.jpg', BOX), ('g2.jpg', None)])])


def test_tv7_score_tie():
    check(tv7_case(), [0.5], [[0, 1, 1]])
    # the common-sense stable order puts the earlier-appended true positive first
    check(tv7_case(), [0.5], [[1, 1, 1]], tie_order='stable')


def tv8_case():
    target = [10, 10, 60, 130]
    images = [
        dict(name='c1s1_000100.jpg', cam=1, gts=[(target, 7)], dets=[(target, 0.9, 0.99)]),
        dict(name='c1s1_000200.jpg', cam=1, gts=[(target, 7), (FAR, 3)],
             dets=[(target, 0.9, 0.70), (FAR, 0.9, 0.75)]),
        dict(name='c2s1_000300.jpg', cam=2, gts=[(target, 7)],
             dets=[([11, 11, 61, 131], 0.9, 0.60)]),
        dict(name='c3s1_000400.jpg', cam=3, gts=[(target, 9)], dets=[(target, 0.9, 0.80)]),
        dict(name='c2s1_000500.jpg', cam=2, gts=[(target, 7)], dets=[]),
    ]
    return hand_case(images, [dict(image='c1s1_000100.jpg', box=target, pid=7)],
                     dict(standard=dict(kind='all_but_query', cross_camera=False),
                          multi_view=dict(kind='all_but_query', cross_camera=True)), 'PRW')


def test_tv8a_prw_all_cameras():
    fast = check(tv8_case(), [(0.5 / 3 + 0.5 * 2 / 4) * 2 / 3], [[0, 1, 1]], name='standard')
    assert fast.count_gt.tolist() == [3]
    assert fast.ap[0] == pytest.approx(0.277778, abs=1e-6)


def test_tv8b_prw_cross_camera():
    fast = check(tv8_case(), [0.25], [[0, 1, 1]], name='multi_view')
    assert fast.count_gt.tolist() == [2]


def test_tv9_detection_mutual_argmax():
    gts = [np.array([[0, 0, 100, 100], [200, 0, 300, 100]], float),
           np.array([[0, 0, 50, 50]], float)]
    boxes = [np.array([[0, 0, 100, 60], [0, 0, 100, 80], [200, 0, 300, 70], [500, 500, 550, 550]],
                      float), np.zeros((0, 4))]
    scores = [np.array([0.9, 0.8, 0.7, 0.3]), np.zeros(0)]
    ref = reference_detection(gts, boxes, scores, det_thresh=0.01)
    dets = DetectionSet([0, 4, 4], np.concatenate(boxes), np.concatenate(scores),
                        np.zeros((4, 2)))
    fast = evaluate_detection([0, 2, 3], np.concatenate(gts), dets, det_thresh=0.01)
    for got in (ref, fast):
        assert got['recall'] == pytest.approx(2 / 3, abs=1e-12)
        assert got['ap'] == pytest.approx((0.5 * 0.5 + 0.5 * 2 / 3) * 2 / 3, abs=1e-12)
    assert fast['ap'] == pytest.approx(0.388889, abs=1e-6)
