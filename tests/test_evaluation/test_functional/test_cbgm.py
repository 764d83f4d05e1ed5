# Copyright (c) mmpsearch contributors. All rights reserved.
"""CBGM re-ranking: the matching rule and a hand-made case where context fixes a rank."""
import numpy as np
import pytest

from mmpsearch.evaluation import PersonSearchMetric
from mmpsearch.evaluation.functional import cbgm_rerank_image
from mmpsearch.evaluation.toy_data import hand_case

QBOX, CBOX, BOX, FAR = [0, 0, 40, 100], [100, 0, 140, 100], [10, 10, 50, 110], [200, 10, 240, 110]


def test_rerank_uses_largest_matched_weight():
    ctx = np.array([[1., 0.], [0., 1.]])
    feats = np.array([[0.5, 0.0], [0.0, 0.9]])
    # query -> detection 0 (0.5), context -> detection 1 (0.9): the query's match gets 0.9
    assert cbgm_rerank_image(ctx, feats) == (0, pytest.approx(0.9))
    # more context than detections: the query may stay unmatched
    assert cbgm_rerank_image(ctx, np.array([[0.1, 0.8]])) is None
    assert cbgm_rerank_image(ctx, np.zeros((0, 2))) is None


def context_case():
    s75, s19 = np.sqrt(0.75), np.sqrt(0.19)
    case = hand_case(
        [dict(name='q.jpg', gts=[(QBOX, 1), (CBOX, 2)],
              dets=[(QBOX, 0.99, 0.0), (CBOX, 0.9, 0.0)]),
         dict(name='g1.jpg', gts=[(BOX, 1), (FAR, 2)], dets=[(BOX, 0.9, 0.0), (FAR, 0.9, 0.0)]),
         dict(name='g2.jpg', gts=[(BOX, 3)], dets=[(BOX, 0.9, 0.0)])],
        [dict(image='q.jpg', box=QBOX, pid=1)],
        dict(P=dict(kind='listed', rows=[dict(query=0, gallery=[('g1.jpg', BOX),
                                                                  ('g2.jpg', None)])])))
    # 3-d features: query q, its companion c, target t (q.t = .5), companion again in
    # g1 (c.c' = .9), distractor d in g2 (q.d = .6); the det on the query box itself is
    # excluded from the context by its IoU with the query box
    case.query_feats = np.array([[1., 0., 0.]])
    case.det_feats = [np.array([[0., 0., 1.], [0., 1., 0.]]),
                      np.array([[.5, 0., s75], [0., .9, s19]]),
                      np.array([[.6, 0., .8]])]
    case.gt_feats = np.zeros((5, 3))
    return case


@pytest.mark.parametrize('cbgm', [False, True])
def test_context_matching_promotes_the_target(cbgm):
    case = context_case()
    metric = PersonSearchMetric(cbgm=cbgm, cbgm_k1=2, cbgm_k2=2, gt_reid=False,
                                detection=False)
    metric.dataset_meta = dict(search_protocol=case.search_protocol)
    out = metric.compute_metrics(case.records())
    if cbgm:  # t becomes 0.9 and ranks first
        assert out['P/mAP'] == pytest.approx(1.0) and out['P/top1'] == 1.0
    else:  # d (0.6) ranks before t (0.5)
        assert out['P/mAP'] == pytest.approx(0.5) and out['P/top1'] == 0.0


def test_context_ignores_the_query_box_detection():
    case = context_case()
    metric = PersonSearchMetric(cbgm=True, cbgm_k1=2, cbgm_k2=2, cbgm_context_iou=1.0,
                                gt_reid=False, detection=False)
    metric.dataset_meta = dict(search_protocol=case.search_protocol)
    # with the query-box detection admitted as context, it displaces the companion and
    # the matching no longer lifts the target
    assert metric.compute_metrics(case.records())['P/top1'] == 0.0
