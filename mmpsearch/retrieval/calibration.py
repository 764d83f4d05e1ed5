# Copyright (c) mmpsearch contributors. All rights reserved.
"""Calibrating the "not present" answer: a similarity threshold for a target precision.

On a labelled split every query is searched in the split's gallery (its own image left
out) and each of its top-k hits is labelled correct (same identity) or not. Over all
queries this gives a precision/recall curve of the rule "show hits with similarity
``>= t``":

* precision(t) = correct hits ``>= t`` / hits ``>= t``;
* recall(t) = correct hits ``>= t`` / correct hits the top-k could hold (per query
  ``min(k, gallery detections of its identity)``).

The calibrated threshold is the lowest similarity of a correct hit at which the
precision reaches the target (the largest recall at that precision). Queries whose
identity is absent from the gallery add only wrong hits: they are what the threshold
learns to refuse, so a labelled split with some absent identities (the synthetic and
real test splits have them) calibrates the "not present" answer directly.
"""
from dataclasses import asdict, dataclass, field
from typing import List, Sequence, Tuple

import numpy as np


@dataclass
class ThresholdCalibration:
    """A calibrated threshold and the curve it was picked from.

    Attributes:
        similarity (float): the threshold.
        target_precision (float): the precision asked for.
        precision (float): precision at the threshold on the labelled split.
        recall (float): recall at the threshold.
        num_queries (int): labelled queries used.
        num_hits (int): labelled hits (query × top-k).
        topk (int): hits per query.
        source (str): what the split was (for the manifest).
        thresholds, precisions, recalls (list[float]): the curve (descending threshold).
    """
    similarity: float
    target_precision: float
    precision: float
    recall: float
    num_queries: int
    num_hits: int
    topk: int
    source: str = ''
    thresholds: List[float] = field(default_factory=list, repr=False)
    precisions: List[float] = field(default_factory=list, repr=False)
    recalls: List[float] = field(default_factory=list, repr=False)

    def to_manifest(self) -> dict:
        """The manifest's ``threshold`` entry (no curve)."""
        d = asdict(self)
        for k in ('thresholds', 'precisions', 'recalls'):
            d.pop(k)
        return d

    def plot(self, path: str) -> None:
        """Draw the precision/recall curve with the chosen point into ``path``."""
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
        ax[0].plot(self.recalls, self.precisions, color='tab:blue')
        ax[0].scatter([self.recall], [self.precision], color='tab:red', zorder=3,
                      label=f't = {self.similarity:.3f}')
        ax[0].set_xlabel('recall')
        ax[0].set_ylabel('precision')
        ax[0].set_ylim(0, 1.02)
        ax[0].set_xlim(0, 1.0)
        ax[0].legend(loc='lower left')
        ax[0].set_title(f'hits in top-{self.topk}, {self.num_queries} queries')
        ax[1].plot(self.thresholds, self.precisions, label='precision')
        ax[1].plot(self.thresholds, self.recalls, label='recall')
        ax[1].axvline(self.similarity, color='tab:red', ls='--')
        ax[1].axhline(self.target_precision, color='grey', ls=':')
        ax[1].set_xlabel('similarity threshold')
        ax[1].legend(loc='lower left')
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def pair_labels(query_feats: np.ndarray, query_ids: Sequence[int],
                query_groups: Sequence, gallery_feats: np.ndarray,
                gallery_ids: Sequence[int], gallery_groups: Sequence,
                topk: int = 10) -> Tuple[np.ndarray, np.ndarray, int]:
    """Top-k hits of each labelled query and whether each is right.

    Args:
        query_feats (np.ndarray): (Q, D) L2-normalised query embeddings.
        query_ids (Sequence[int]): (Q,) identity of each query (>= 0).
        query_groups (Sequence): (Q,) image of each query; the gallery detections of the
            same image are not searched (a query finding itself proves nothing).
        gallery_feats (np.ndarray): (G, D) embeddings of the gallery detections.
        gallery_ids (Sequence[int]): (G,) identity of each detection (-1: unknown or a
            false detection, wrong for every query).
        gallery_groups (Sequence): (G,) image of each detection.
        topk (int): hits per query.

    Returns:
        tuple: (H,) similarities, (H,) bool correctness, and the number of correct hits
        the top-k lists could hold (the recall denominator).
    """
    qf = np.asarray(query_feats, np.float64)
    gf = np.asarray(gallery_feats, np.float64)
    qid, gid = np.asarray(query_ids), np.asarray(gallery_ids)
    qg, gg = np.asarray(query_groups), np.asarray(gallery_groups)
    sims_all, labels_all, positives = [], [], 0
    for q in range(len(qf)):
        ok = gg != qg[q]
        rows = np.nonzero(ok)[0]
        sims = gf[rows] @ qf[q]
        order = np.lexsort((rows, -sims))[:topk]
        sims_all.append(sims[order])
        labels_all.append((gid[rows[order]] == qid[q]) & (qid[q] >= 0))
        positives += min(topk, int(((gid[rows] == qid[q]) & (qid[q] >= 0)).sum()))
    return (np.concatenate(sims_all) if sims_all else np.zeros(0),
            np.concatenate(labels_all) if labels_all else np.zeros(0, bool), positives)


def calibrate_threshold(similarities: np.ndarray, correct: np.ndarray, num_positives: int,
                        target_precision: float = 0.9, num_queries: int = 0,
                        topk: int = 10, source: str = '') -> ThresholdCalibration:
    """The lowest similarity threshold whose precision reaches ``target_precision``.

    Args:
        similarities (np.ndarray): (H,) similarity of each labelled hit.
        correct (np.ndarray): (H,) bool, the hit is the query's identity.
        num_positives (int): recall denominator (see :func:`pair_labels`).
        target_precision (float): in (0, 1].
        num_queries, topk, source: recorded with the result.

    Raises:
        ValueError: no hit is labelled, or no threshold reaches the precision.
    """
    if not 0 < target_precision <= 1:
        raise ValueError(f'target precision must be in (0, 1], got {target_precision}')
    sims = np.asarray(similarities, np.float64)
    good = np.asarray(correct, bool)
    if len(sims) == 0 or not good.any():
        raise ValueError('the labelled split gives no correct hit: nothing to calibrate '
                         '(do its identities appear in more than one image?)')
    order = np.argsort(-sims, kind='stable')
    sims, good = sims[order], good[order]
    last = np.r_[np.nonzero(np.diff(sims))[0], len(sims) - 1]  # end of each tie block
    tp = np.cumsum(good)[last]
    precision = tp / (last + 1)
    recall = tp / max(int(num_positives), 1)
    thresholds = sims[last]
    # candidate thresholds: similarities of correct hits (a threshold between two wrong
    # hits only admits more wrong ones)
    starts = np.r_[0, last[:-1] + 1]
    has_correct = np.maximum.reduceat(good, starts)
    ok = np.nonzero((precision >= target_precision) & has_correct)[0]
    if len(ok) == 0:
        raise ValueError(f'no threshold reaches precision {target_precision} on this split '
                         f'(best {precision.max():.3f}); ask for a lower target')
    i = ok[-1]
    return ThresholdCalibration(float(thresholds[i]), float(target_precision),
                                float(precision[i]), float(recall[i]), int(num_queries),
                                int(len(sims)), int(topk), source, thresholds.tolist(),
                                precision.tolist(), recall.tolist())


def _label_detections(det_boxes: np.ndarray, gt_boxes: np.ndarray,
                      gt_ids: np.ndarray, iou_thr: float = 0.5) -> np.ndarray:
    """Identity of each detection: that of the annotated box it overlaps most (IoU >=
    ``iou_thr``), else -1 (unlabelled person or false detection)."""
    from mmpsearch.evaluation.functional.iou import pairwise_iou
    out = np.full(len(det_boxes), -1, np.int64)
    if len(det_boxes) and len(gt_boxes):
        iou = pairwise_iou(np.asarray(det_boxes, np.float64).reshape(-1, 4),
                           np.asarray(gt_boxes, np.float64).reshape(-1, 4))
        best = iou.argmax(axis=1)
        ok = iou[np.arange(len(best)), best] >= iou_thr
        out[ok] = np.asarray(gt_ids)[best[ok]]
    return out


def split_from_dump(dump: dict, search_protocol: dict, score_thr: float = 0.5,
                    source: str = '') -> tuple:
    """Labelled queries and gallery detections of a test split's results dump.

    Returns:
        tuple: ``(query_feats, query_ids, query_groups, gallery_feats, gallery_ids,
        gallery_groups)`` for :func:`pair_labels` (groups are image indices).
    """
    from mmpsearch.evaluation import assemble_predictions
    sp = search_protocol
    preds = assemble_predictions(dump['records'], sp, source)
    dets = preds.dets.above(score_thr)
    offs = np.asarray(sp['gt_offsets'], np.int64)
    gt_boxes = np.asarray(sp['gt_bboxes'], np.float64)
    gt_ids = np.asarray(sp['gt_person_ids'], np.int64)
    gids = np.concatenate([
        _label_detections(dets.bboxes[dets.offsets[i]:dets.offsets[i + 1]],
                          gt_boxes[offs[i]:offs[i + 1]], gt_ids[offs[i]:offs[i + 1]])
        for i in range(dets.num_images)
    ]) if dets.num_images else np.zeros(0, np.int64)
    known = np.asarray(preds.query_known, bool)
    return (preds.query_feats[known], np.asarray(sp['query_person_ids'])[known],
            np.asarray(sp['query_image_idx'])[known], dets.feats, gids, dets.image_index())


def split_from_images(inferencer, items: Sequence[dict], score_thr: float = 0.5) -> tuple:
    """Labelled queries and gallery detections of your own annotated images.

    Args:
        inferencer (PersonSearchInferencer): the index's model.
        items (Sequence[dict]): per image ``image`` (path), ``boxes`` (xyxy list) and
            ``ids`` (an identity per box; the same identity in several images).
        score_thr (float): detections scoring below are left out.

    Every annotated box is a query; the gallery is every detection of every image,
    labelled by the annotated box it overlaps (IoU >= 0.5).
    """
    import os.path as osp
    import mmcv
    qf, qid, qg, gf, gid, gg = [], [], [], [], [], []
    for i, item in enumerate(items):
        path = item['image']
        if not osp.isfile(path):
            raise FileNotFoundError(f'labelled image not found: {path}')
        img = mmcv.imread(path)
        if img is None:
            raise OSError(f'cannot decode labelled image {path}')
        boxes = np.asarray(item['boxes'], np.float64).reshape(-1, 4)
        ids = np.asarray(item['ids'], np.int64)
        if len(ids) != len(boxes):
            raise ValueError(f'{path}: {len(boxes)} boxes but {len(ids)} ids')
        sample = None
        for box, ident in zip(boxes, ids):
            emb, sample, _ = inferencer._query_forward(img, box.tolist())
            qf.append(emb.numpy())
            qid.append(int(ident))
            qg.append(i)
        if sample is None:
            from mmengine.dataset import pseudo_collate
            sample = inferencer.forward(pseudo_collate([inferencer._load_item(img, path)]))[0]
        pred = sample.pred_instances
        keep = (pred.scores >= score_thr).cpu().numpy()
        emb = pred.embeddings.float().cpu().numpy()[keep]
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        det_boxes = pred.bboxes.float().cpu().numpy()[keep]
        gf.append(emb)
        gid.append(_label_detections(det_boxes, boxes, ids))
        gg.append(np.full(len(emb), i))
    dim = len(qf[0]) if qf else 0
    return (np.stack(qf) if qf else np.zeros((0, dim)), np.asarray(qid, np.int64),
            np.asarray(qg), np.concatenate(gf) if gf else np.zeros((0, dim)),
            np.concatenate(gid) if gid else np.zeros(0, np.int64),
            np.concatenate(gg) if gg else np.zeros(0, np.int64))
