# Copyright (c) mmpsearch contributors. All rights reserved.
"""Plain per-query loop implementation of the protocol: the oracle for the fast code.

This is a direct transcription of the pseudo-code of oimnetpp.md §6.1–6.4 (the structure
of the released SeqNet/OIMNet++ ``eval_func.py``), written independently of the fast
path: it reads ``search_protocol`` itself, loops over queries and gallery entries, sorts
with numpy and has its own scikit-learn-style AP. The tests compare
:func:`evaluate_search`/:func:`evaluate_detection` with it to 1e-9, and
``tools/analysis_tools/benchmark_eval.py`` times it. It is slow by design (about 11 min at
PRW scale on 2 cores); do not use it for real evaluations.
"""
from typing import Dict, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment


def _iou(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0., iw) * max(0., ih)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.


def sklearn_average_precision(y_true, y_score) -> float:
    """``average_precision_score`` as scikit-learn computes it (via its PR curve)."""
    y_true = np.asarray(y_true, np.float64)
    y_score = np.asarray(y_score, np.float64)
    desc = np.argsort(y_score, kind='mergesort')[::-1]
    y_score, y_true = y_score[desc], y_true[desc]
    distinct = np.where(np.diff(y_score))[0]
    thr_idx = np.r_[distinct, y_true.size - 1]
    tps = np.cumsum(y_true)[thr_idx]
    fps = 1 + thr_idx - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    precision = np.r_[precision[::-1], 1]
    recall = np.r_[recall[::-1], 0]
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def gallery_entries(sp, proto, qi, exclude_query_image=False):
    """[(image, target box or None)] of protocol row ``qi``, in protocol order."""
    q = int(proto['query_idx'][qi])
    own = int(sp['query_image_idx'][q])
    out = []
    if proto['kind'] == 'listed':
        gal = np.asarray(proto['gallery_image_idx'])[qi]
        pq, ps = np.asarray(proto['pos_query']), np.asarray(proto['pos_slot'])
        pb = np.asarray(proto['pos_bboxes'], np.float64).reshape(-1, 4)
        for s, img in enumerate(gal):
            if img < 0 or (exclude_query_image and img == own):
                continue
            hit = np.nonzero((pq == qi) & (ps == s))[0]
            out.append((int(img), pb[hit[0]] if len(hit) else None))
    else:
        cams = np.asarray(sp['image_cams'])
        offs = np.asarray(sp['gt_offsets'])
        pids = np.asarray(sp['gt_person_ids'])
        boxes = np.asarray(sp['gt_bboxes'], np.float64)
        pid = sp['query_person_ids'][q]
        for img in range(len(sp['image_ids'])):
            if img == own:
                continue
            if proto['cross_camera'] and cams[img] == cams[own]:
                continue
            rows = [r for r in range(offs[img], offs[img + 1]) if pids[r] == pid]
            out.append((img, boxes[rows[0]] if rows else None))
    return q, own, out


def _context(q, sp, query_feat, boxes, scores, feats, cbgm):
    qbox = np.asarray(sp['query_bboxes'], np.float64)[q]
    ctx = [np.asarray(query_feat, np.float64)]
    for j in np.argsort(-scores, kind='stable'):
        if len(ctx) >= cbgm['k2']:
            break
        if _iou(boxes[j], qbox) <= cbgm['context_iou']:
            ctx.append(np.asarray(feats[j], np.float64))
    return np.stack(ctx)


def reference_search(sp: dict,
                     name: str,
                     query_feats: np.ndarray,
                     det_bboxes: Sequence[np.ndarray],
                     det_scores: Sequence[np.ndarray],
                     det_feats: Sequence[np.ndarray],
                     det_thresh: float = 0.5,
                     tie_order: str = 'reversed',
                     duplicate_gallery: str = 'released',
                     exclude_query_image: bool = False,
                     cbgm: Optional[dict] = None,
                     rows: Optional[Sequence[int]] = None) -> Dict[str, np.ndarray]:
    """Evaluate protocol ``name`` query by query.

    Args:
        sp (dict): ``search_protocol``.
        name (str): protocol name.
        query_feats (np.ndarray): (Q, D) embeddings of all queries.
        det_bboxes, det_scores, det_feats: per test image, (M_i, 4), (M_i,), (M_i, D).
        det_thresh (float): keep detections with ``score >= det_thresh``.
        tie_order (str): ``'reversed'`` or ``'stable'`` (see search.py).
        duplicate_gallery (str): ``'released'`` or ``'dedup'``.
        exclude_query_image (bool): drop the query's image from listed galleries.
        cbgm (dict, optional): ``dict(k1=, k2=, context_iou=)`` to re-rank with CBGM.
        rows (Sequence[int], optional): protocol rows to evaluate (default all).

    Returns:
        dict: per evaluated row ``ap``, ``topk`` (n, 3), ``count_tp``, ``count_gt``,
        ``num_items``.
    """
    proto = sp['protocols'][name]
    n_rows = len(proto['query_idx'])
    rows = range(n_rows) if rows is None else rows
    kept = []
    for b, s, f in zip(det_bboxes, det_scores, det_feats):
        k = np.asarray(s) >= det_thresh
        kept.append((np.asarray(b, np.float64).reshape(-1, 4)[k], np.asarray(s)[k],
                     np.asarray(f, np.float64)[k]))
    out = dict(ap=[], topk=[], count_tp=[], count_gt=[], num_items=[])
    for qi in rows:
        q, own, gallery = gallery_entries(sp, proto, qi, exclude_query_image)
        qf = np.asarray(query_feats[q], np.float64)
        count_gt, count_tp = 0, 0
        counted = set()
        name2sim, name2gt = {}, {}
        for img, gt in gallery:
            if gt is not None:
                if duplicate_gallery == 'released' or img not in counted:
                    count_gt += 1
                counted.add(img)
            boxes, _, feats = kept[img]
            if len(boxes) == 0:
                continue
            if img in name2sim:  # duplicate entry: already processed
                if duplicate_gallery == 'dedup' and name2gt[img] is None:
                    name2gt[img] = gt
                continue
            name2sim[img] = np.einsum('ij,j->i', feats, qf)  # ties stay ties (search.py)
            name2gt[img] = gt
        if cbgm is not None and name2sim:
            sims = np.concatenate(list(name2sim.values()))
            imgs = np.concatenate([[img] * len(v) for img, v in name2sim.items()])
            top = set(imgs[np.argsort(sims, kind='stable')[-cbgm['k1']:]].tolist())
            qb, qs, qfe = kept[own]
            ctx = _context(q, sp, qf, qb, qs, qfe, cbgm)
            for img in top:
                feats = kept[img][2]
                w = ctx @ feats.T
                r, c = linear_sum_assignment(w, maximize=True)
                for ri, ci in zip(r, c):
                    if ri == 0:
                        name2sim[img] = name2sim[img].copy()
                        name2sim[img][ci] = w[r, c].max()
                        break
        y_true, y_score = [], []
        for img, sim in name2sim.items():
            gt = name2gt[img]
            boxes = kept[img][0]
            label = np.zeros(len(sim))
            if gt is not None:
                thr = min(0.5, (gt[2] - gt[0]) * (gt[3] - gt[1]) /
                          ((gt[2] - gt[0] + 10) * (gt[3] - gt[1] + 10)))
                if tie_order == 'reversed':
                    order = np.argsort(sim, kind='stable')[::-1]
                else:
                    order = np.argsort(-sim, kind='stable')
                sim, boxes = sim[order], boxes[order]
                for j in range(len(sim)):
                    if _iou(boxes[j], gt) >= thr:
                        label[j] = 1
                        count_tp += 1
                        break
            y_true.extend(label.tolist())
            y_score.extend(sim.tolist())
        y_true, y_score = np.asarray(y_true), np.asarray(y_score)
        ap = 0. if count_tp == 0 else \
            sklearn_average_precision(y_true, y_score) * count_tp / count_gt
        if tie_order == 'reversed':
            order = np.argsort(y_score, kind='stable')[::-1]
        else:
            order = np.argsort(-y_score, kind='stable')
        ranked = y_true[order]
        out['ap'].append(ap)
        out['topk'].append([min(1, ranked[:k].sum()) > 0 for k in (1, 5, 10)])
        out['count_tp'].append(count_tp)
        out['count_gt'].append(count_gt)
        out['num_items'].append(len(y_score))
    return {k: np.asarray(v) for k, v in out.items()}


def reference_detection(gt_bboxes: Sequence[np.ndarray],
                        det_bboxes: Sequence[np.ndarray],
                        det_scores: Sequence[np.ndarray],
                        det_thresh: float = 0.5,
                        iou_thresh: float = 0.5) -> Dict[str, float]:
    """Detection AP and recall with mutual arg-max matching (oimnetpp.md §6.4), by loops.

    Args:
        gt_bboxes (Sequence[np.ndarray]): per image (G_i, 4) boxes.
        det_bboxes (Sequence[np.ndarray]): per image (M_i, 4) boxes.
        det_scores (Sequence[np.ndarray]): per image (M_i,) scores.
        det_thresh (float): keep ``score >= det_thresh``.
        iou_thresh (float): IoU for a match.

    Returns:
        dict: ``ap`` (AP × recall) and ``recall``.
    """
    y_true, y_score = [], []
    count_gt = count_tp = 0
    for gts, boxes, scores in zip(gt_bboxes, det_bboxes, det_scores):
        gts = np.asarray(gts, np.float64).reshape(-1, 4)
        keep = np.asarray(scores) >= det_thresh
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)[keep]
        scores = np.asarray(scores, np.float64)[keep]
        if len(boxes) == 0:
            count_gt += len(gts)
            continue
        ious = np.zeros((len(gts), len(boxes)))
        for i in range(len(gts)):
            for j in range(len(boxes)):
                ious[i, j] = _iou(gts[i], boxes[j])
        tf = ious >= iou_thresh
        for j in range(len(boxes)):
            if len(gts):
                best = np.argmax(ious[:, j])
                for i in range(len(gts)):
                    if i != best:
                        tf[i, j] = False
        for i in range(len(gts)):
            best = np.argmax(ious[i, :])
            for j in range(len(boxes)):
                if j != best:
                    tf[i, j] = False
        for j in range(len(boxes)):
            y_score.append(scores[j])
            y_true.append(bool(tf[:, j].any()))
        count_tp += int(tf.sum())
        count_gt += len(gts)
    recall = count_tp / count_gt if count_gt else 0.
    ap = sklearn_average_precision(y_true, y_score) * recall if count_tp else 0.
    return dict(ap=ap, recall=recall)
