# Copyright (c) mmpsearch contributors. All rights reserved.
"""Detection AP@0.5 and recall of the person-search protocol (oimnetpp.md §6.4,
spnet.md §7.2), vectorised over all images.

Matching is **mutual arg-max**, not VOC greedy-by-score: a (GT, detection) pair is a hit
when IoU >= 0.5, the GT is the detection's best-IoU GT and the detection is the GT's
best-IoU detection (first index on equal IoU, as ``np.argmax``). Every kept detection
enters the AP ranking with its score; recall = hits / all annotated boxes (images
without a kept detection included), and the reported AP is ``AP × recall``.
"""
from typing import Dict, Optional

import numpy as np

from .average_precision import average_precision
from .gallery import DetectionSet, ranges_to_indices
from .iou import paired_iou


def _first_argmax(group: np.ndarray, iou: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per group, the ``other`` index with the largest IoU (smallest index on ties)."""
    order = np.lexsort((other, -iou, group))
    g = group[order]
    first = np.r_[True, g[1:] != g[:-1]] if len(g) else np.zeros(0, bool)
    best = np.full(int(group.max()) + 1 if len(group) else 0, -1, np.int64)
    best[g[first]] = other[order][first]
    return best


def evaluate_detection(gt_offsets: np.ndarray,
                       gt_bboxes: np.ndarray,
                       dets: DetectionSet,
                       det_thresh: float = 0.5,
                       iou_thresh: float = 0.5,
                       gt_keep: Optional[np.ndarray] = None) -> Dict[str, float]:
    """AP × recall and recall of the detections against the annotated boxes.

    Args:
        gt_offsets (np.ndarray): (I+1,) CSR offsets of the annotated boxes.
        gt_bboxes (np.ndarray): (G, 4) annotated boxes (xyxy, original pixels).
        dets (DetectionSet): detections of the same I images.
        det_thresh (float): keep detections with ``score >= det_thresh``.
        iou_thresh (float): IoU of a match.
        gt_keep (np.ndarray, optional): (G,) bool, the boxes to evaluate against
            (``labeled_only``); images left without a box are skipped entirely, their
            detections included, as the released ``labeled_only=True`` does.

    Returns:
        dict: ``ap``, ``recall``, ``num_gt``, ``num_tp``, ``num_dets``.
    """
    gt_offsets = np.asarray(gt_offsets, np.int64)
    gt_bboxes = np.asarray(gt_bboxes, np.float64).reshape(-1, 4)
    n_img = len(gt_offsets) - 1
    if dets.num_images != n_img:
        raise ValueError(f'{dets.num_images} detection images for {n_img} GT images')
    d = dets.above(det_thresh)
    gt_img = np.repeat(np.arange(n_img, dtype=np.int64), np.diff(gt_offsets))
    if gt_keep is not None:
        gt_keep = np.asarray(gt_keep, bool)
        has_gt = np.bincount(gt_img[gt_keep], minlength=n_img) > 0
        d = d.select(has_gt[d.image_index()])
        gt_rows = np.nonzero(gt_keep)[0]
    else:
        gt_rows = np.arange(len(gt_bboxes))
    gi = gt_img[gt_rows]
    n_det_img = d.counts
    # all (gt, det) pairs of the same image
    pg = np.repeat(np.arange(len(gt_rows), dtype=np.int64), n_det_img[gi])
    pd = ranges_to_indices(d.offsets[:-1][gi], n_det_img[gi])
    iou = paired_iou(gt_bboxes[gt_rows][pg], d.bboxes[pd])
    hit = np.zeros(len(pg), bool)
    if len(pg):
        best_g = _first_argmax(pd, iou, pg)
        best_d = _first_argmax(pg, iou, pd)
        hit = (iou >= iou_thresh) & (best_g[pd] == pg) & (best_d[pg] == pd)
    y_true = np.zeros(d.num_dets, bool)
    y_true[pd[hit]] = True
    num_gt, num_tp = len(gt_rows), int(hit.sum())
    recall = num_tp / num_gt if num_gt else 0.
    ap = average_precision(y_true, d.scores) * recall if num_tp else 0.
    return dict(ap=float(ap), recall=float(recall), num_gt=num_gt, num_tp=num_tp,
                num_dets=d.num_dets)
