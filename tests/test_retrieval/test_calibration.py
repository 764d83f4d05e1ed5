# Copyright (c) mmpsearch contributors. All rights reserved.
"""Threshold calibration: the precision rule, the curve, and a labelled split from a dump."""
import numpy as np
import pytest

from mmpsearch.evaluation import make_dump
from mmpsearch.evaluation.toy_data import random_case
from mmpsearch.retrieval import calibrate_threshold, pair_labels
from mmpsearch.retrieval.calibration import split_from_dump


def test_threshold_is_lowest_right_hit_at_target_precision(tmp_path):
    sims = np.array([0.95, 0.9, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    good = np.array([1, 1, 0, 1, 1, 0, 0, 1], bool)
    cal = calibrate_threshold(sims, good, num_positives=6, target_precision=0.75)
    # precision by threshold: .95→1, .9→2/3, .8→3/4, .7→4/5, .6→4/6, .5→4/7, .4→5/8
    assert cal.similarity == 0.7 and cal.precision == pytest.approx(0.8)
    assert cal.recall == pytest.approx(4 / 6)
    assert calibrate_threshold(sims, good, 6, 1.0).similarity == 0.95
    cal.plot(str(tmp_path / 'pr.png'))
    assert (tmp_path / 'pr.png').stat().st_size > 0
    with pytest.raises(ValueError, match='no threshold reaches'):
        calibrate_threshold(sims[1:3], good[1:3], 1, 0.9)
    with pytest.raises(ValueError, match='no correct hit'):
        calibrate_threshold(sims, np.zeros(8, bool), 0, 0.9)


def test_pair_labels_leave_out_the_query_image():
    feats = np.eye(4)
    sims, good, pos = pair_labels(feats[:2], [0, 1], [0, 1], feats, [0, 1, 0, -1],
                                  [0, 1, 2, 2], topk=2)
    # all similarities 0: rows by order. Query 0 (image 0) sees rows 1, 2 (its right
    # hit, image 2); query 1 sees rows 0, 2, and its identity is nowhere else
    assert good.tolist() == [False, True, False, False]
    assert pos == 1 and len(sims) == 4


def test_split_from_a_results_dump():
    case = random_case(np.random.default_rng(0), kind='PRW', num_images=40, num_ids=8,
                       dim=16, num_queries=12, noise=0.6)
    dump = make_dump(case.records(), case.search_protocol)
    split = split_from_dump(dump, case.search_protocol, 0.5)
    qf, qid, qg, gf, gid, gg = split
    assert len(qf) == 12 and gf.shape[1] == 16 and len(gid) == len(gg) == len(gf)
    assert set(np.unique(gid)) <= set(range(-1, 8))
    sims, good, positives = pair_labels(*split, topk=5)
    cal = calibrate_threshold(sims, good, positives, 0.8, num_queries=len(qf), topk=5)
    assert cal.precision >= 0.8 and 0 < cal.recall <= 1
    kept = sims >= cal.similarity
    assert good[kept].mean() >= 0.8
