# Copyright (c) mmpsearch contributors. All rights reserved.
"""Detection AP/recall (mutual arg-max matching) against the loop oracle."""
import numpy as np
import pytest

from mmpsearch.evaluation.functional import DetectionSet, evaluate_detection
from mmpsearch.evaluation.functional.reference import reference_detection
from mmpsearch.evaluation.toy_data import random_case


@pytest.mark.parametrize('seed', range(40))
def test_random_detection_matches_oracle(seed):
    rng = np.random.default_rng(seed)
    case = random_case(rng, kind='PRW', num_images=int(rng.integers(3, 30)),
                       gt_per_image=(0, 5), dets_per_image=(0, 8), quantize=seed % 2 == 0)
    sp = case.search_protocol
    off = sp['gt_offsets']
    n = len(off) - 1
    gts = [sp['gt_bboxes'][off[i]:off[i + 1]] for i in range(n)]
    boxes, scores = case.det_bboxes, case.det_scores
    if seed % 3 == 0:  # exact duplicates: equal IoUs exercise the first-index rule
        boxes = [np.r_[b, b[:1]] for b in boxes]
        scores = [np.r_[s, s[:1]] for s in scores]
    doff = np.r_[0, np.cumsum([len(b) for b in boxes])]
    dets = DetectionSet(doff, np.concatenate(boxes), np.concatenate(scores),
                        np.zeros((doff[-1], 1)))
    thr = (0.01, 0.5)[seed % 2]
    fast = evaluate_detection(off, sp['gt_bboxes'], dets, det_thresh=thr)
    ref = reference_detection(gts, boxes, scores, det_thresh=thr)
    assert fast['ap'] == pytest.approx(ref['ap'], abs=1e-9)
    assert fast['recall'] == pytest.approx(ref['recall'], abs=1e-12)


def test_labeled_only_skips_images_without_labelled_boxes():
    # image 0: one labelled box matched; image 1: only an unlabelled person, whose
    # detection is ignored entirely (the released labeled_only=True behaviour)
    gt = np.array([[0, 0, 10, 20], [0, 0, 10, 20]], float)
    dets = DetectionSet([0, 1, 2], gt.copy(), np.array([0.9, 0.95]), np.zeros((2, 1)))
    out = evaluate_detection([0, 1, 2], gt, dets, gt_keep=np.array([True, False]))
    assert out['recall'] == 1.0 and out['ap'] == 1.0 and out['num_dets'] == 1
    out = evaluate_detection([0, 1, 2], gt, dets)
    assert out['recall'] == 1.0 and out['num_gt'] == 2


def test_detections_on_an_image_without_annotations_are_false_positives():
    gt = np.array([[0, 0, 10, 20]], float)
    dets = DetectionSet([0, 1, 2], np.array([[0, 0, 10, 20], [5, 5, 9, 9]], float),
                        np.array([0.8, 0.9]), np.zeros((2, 1)))
    out = evaluate_detection([0, 1, 1], gt, dets)
    assert out['recall'] == 1.0
    assert out['ap'] == pytest.approx(0.5)  # the FP scores higher


def test_no_match_and_no_annotation_give_zero():
    dets = DetectionSet([0, 0], np.zeros((0, 4)), np.zeros(0), np.zeros((0, 1)))
    out = evaluate_detection([0, 0], np.zeros((0, 4)), dets)
    assert out['ap'] == 0 and out['recall'] == 0
