# Copyright (c) mmpsearch contributors. All rights reserved.
"""Search and detection metrics of query-centric (QC) detections (spnet.md §6.2).

QC inference detects every gallery image once *per query*: the detections of a
(query, image) pair exist for that query only. Each detection therefore carries the
query row it was found for (``det_query``), and the protocol maths run per query on that
query's own detections:

* **search** (:func:`evaluate_search_qc`): for every query, the standard protocol of
  :func:`~.search.evaluate_search` (cosine ranking, the small-box IoU rule, best-similarity
  positive, ``AP × recall``, top-k) on the detections made for it. The per-query results
  are exactly what :func:`~.search.evaluate_search` gives on a detection set holding only
  that query's detections (the tests check it).
* **detection** (:func:`evaluate_detection_qc`): every (query, gallery image) pair is one
  detection problem whose only ground truth is the query person's box in that image
  (none in an image without the person). Matching is the OC rule of
  :func:`~.detection.evaluate_detection` (mutual arg-max, IoU >= 0.5) applied per pair;
  recall = found target occurrences / target occurrences in the galleries, and AP is
  pooled over all pairs' detections, times recall. The spec names the released
  ``evaluate_detection_qc`` without its formula; this definition is recorded in
  docs/evaluation.md.
"""
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from .detection import evaluate_detection
from .gallery import DetectionSet, QuerySet, SearchGallery, ranges_to_indices
from .search import TOPK, SearchResult, evaluate_search

__all__ = ['take_queries', 'split_by_query', 'evaluate_search_qc', 'evaluate_detection_qc']


def take_queries(g: SearchGallery, qis: Sequence[int]) -> SearchGallery:
    """The protocol restricted to some of its queries (in the given order).

    Args:
        g (SearchGallery): a protocol.
        qis (Sequence[int]): positions in ``g``'s own query list.

    Returns:
        SearchGallery: the same galleries and targets for those queries.
    """
    qis = np.asarray(qis, np.int64).reshape(-1)

    def csr(offsets, *arrays):
        counts = offsets[qis + 1] - offsets[qis]
        idx = ranges_to_indices(offsets[qis], counts)
        return (np.r_[0, np.cumsum(counts)].astype(np.int64), *[a[idx] for a in arrays])

    tgt_off, tgt_img, tgt_box = csr(g.tgt_offsets, g.tgt_images, g.tgt_boxes)
    extra = {}
    if g.kind == 'listed':
        gal_off, gal_img, gal_slot = csr(g.gal_offsets, g.gal_images, g.gal_slots)
        extra = dict(gal_offsets=gal_off, gal_images=gal_img, gal_slots=gal_slot)
    return SearchGallery(g.name, g.kind, g.query_rows[qis], g.count_gt[qis], tgt_off,
                         tgt_img, tgt_box, cross_camera=g.cross_camera, **extra)


def split_by_query(dets: DetectionSet, det_query: np.ndarray, rows: np.ndarray):
    """Yield ``(row, DetectionSet)``: each query's own detections over all images.

    Args:
        dets (DetectionSet): all QC detections, CSR by image.
        det_query (np.ndarray): (M,) query row of each detection.
        rows (np.ndarray): query rows wanted, ascending.

    Yields:
        tuple[int, DetectionSet]: a query row and its detections (image order kept).
    """
    det_query = np.asarray(det_query, np.int64).reshape(-1)
    if len(det_query) != dets.num_dets:
        raise ValueError(f'{len(det_query)} query indices for {dets.num_dets} detections')
    img = dets.image_index()
    order = np.lexsort((np.arange(len(img)), img, det_query))  # query, image, own order
    q_sorted = det_query[order]
    bounds = np.searchsorted(q_sorted, np.stack([rows, rows + 1]))
    n_img = dets.num_images
    for row, s, e in zip(rows.tolist(), bounds[0], bounds[1]):
        sel = order[s:e]
        counts = np.bincount(img[sel], minlength=n_img)
        yield row, DetectionSet(np.r_[0, np.cumsum(counts)], dets.bboxes[sel],
                                dets.scores[sel], dets.feats[sel])


def evaluate_search_qc(queries: QuerySet,
                       dets: DetectionSet,
                       det_query: np.ndarray,
                       galleries: Sequence[SearchGallery],
                       image_cams: Optional[np.ndarray] = None,
                       tie_order: str = 'reversed',
                       num_buckets: int = 16384,
                       progress: Optional[Callable[[int], None]] = None
                       ) -> Dict[str, SearchResult]:
    """The search protocols on QC detections, each query on its own detections.

    Args:
        queries (QuerySet): all queries.
        dets (DetectionSet): QC detections of every image (``score >= det_thresh``).
        det_query (np.ndarray): (M,) query row each detection was made for.
        galleries (Sequence[SearchGallery]): protocols to evaluate.
        image_cams (np.ndarray, optional): (I,) cameras (cross-camera protocols).
        tie_order (str): see :func:`~.search.evaluate_search`.
        num_buckets (int): see :func:`~.search.evaluate_search`.
        progress (Callable[[int], None], optional): called with 1 per query done.

    Returns:
        dict[str, SearchResult]: per protocol name.
    """
    out = {g.name: SearchResult(g.name, np.zeros(g.num_queries),
                                np.zeros((g.num_queries, len(TOPK)), bool),
                                np.zeros(g.num_queries, np.int64),
                                np.asarray(g.count_gt, np.int64).copy(),
                                np.zeros(g.num_queries, np.int64)) for g in galleries}
    positions = []
    for g in galleries:
        pos = np.full(len(queries.feats), -1, np.int64)
        pos[g.query_rows] = np.arange(g.num_queries)
        positions.append(pos)
    rows = (np.unique(np.concatenate([g.query_rows for g in galleries]))
            if galleries else np.zeros(0, np.int64))
    for row, q_dets in split_by_query(dets, det_query, rows):
        subs, where = [], []
        for g, pos in zip(galleries, positions):
            if pos[row] >= 0:
                subs.append(take_queries(g, [pos[row]]))
                where.append((g.name, pos[row]))
        res = evaluate_search(queries, q_dets, subs, image_cams, tie_order,
                              chunk_size=1, num_buckets=num_buckets)
        for (name, qi), sub in zip(where, subs):
            r, dst = res[sub.name], out[name]
            dst.ap[qi], dst.topk[qi] = r.ap[0], r.topk[0]
            dst.count_tp[qi], dst.num_items[qi] = r.count_tp[0], r.num_items[0]
        if progress is not None:
            progress(1)
    return out


def evaluate_detection_qc(gallery: SearchGallery,
                          dets: DetectionSet,
                          det_query: np.ndarray,
                          query_image_idx: np.ndarray,
                          image_cams: Optional[np.ndarray] = None,
                          det_thresh: float = 0.5,
                          iou_thresh: float = 0.5) -> Dict[str, float]:
    """Detection AP × recall and recall of QC detections against the query's target.

    Args:
        gallery (SearchGallery): the protocol whose (query, image) pairs are scored.
        dets (DetectionSet): QC detections of every image.
        det_query (np.ndarray): (M,) query row of each detection.
        query_image_idx (np.ndarray): (Q,) image of each query row.
        image_cams (np.ndarray, optional): (I,) cameras (cross-camera protocols).
        det_thresh (float): keep detections with ``score >= det_thresh``.
        iou_thresh (float): IoU of a match.

    Returns:
        dict: ``ap``, ``recall``, ``num_gt`` (target occurrences), ``num_tp``,
        ``num_dets`` (kept detections of the protocol's pairs).
    """
    det_query = np.asarray(det_query, np.int64).reshape(-1)
    n_img = dets.num_images
    n_rows = int(max(det_query.max(initial=-1), gallery.query_rows.max(initial=-1))) + 1
    # protocol position of each detection's query; -1: query not in this protocol
    pos_of_row = np.full(n_rows, -1, np.int64)
    pos_of_row[gallery.query_rows] = np.arange(gallery.num_queries)
    det_img = dets.image_index()
    det_pos = pos_of_row[det_query]
    in_gallery = det_pos >= 0
    own_img = np.asarray(query_image_idx, np.int64)[det_query[in_gallery]]
    in_gallery[in_gallery] = _in_gallery(gallery, det_pos[in_gallery], det_img[in_gallery],
                                         own_img, image_cams)
    # pairs (query position, image) as one key each: targets and detections
    tgt_pos = np.repeat(np.arange(gallery.num_queries, dtype=np.int64),
                        np.diff(gallery.tgt_offsets))
    tgt_key = tgt_pos * n_img + gallery.tgt_images
    det_key = det_pos[in_gallery] * n_img + det_img[in_gallery]
    keys, pair_of_det = np.unique(np.r_[tgt_key, det_key], return_inverse=True)
    pair_of_tgt, pair_of_det = pair_of_det[:len(tgt_key)], pair_of_det[len(tgt_key):]
    # every pair is one "image" of the OC detection metric
    gt_counts = np.bincount(pair_of_tgt, minlength=len(keys))
    gt_order = np.argsort(pair_of_tgt, kind='stable')
    sel = np.nonzero(in_gallery)[0]
    d_order = np.argsort(pair_of_det, kind='stable')
    d_counts = np.bincount(pair_of_det, minlength=len(keys))
    rows = sel[d_order]
    pair_dets = DetectionSet(np.r_[0, np.cumsum(d_counts)], dets.bboxes[rows],
                             dets.scores[rows], dets.feats[rows])
    return evaluate_detection(np.r_[0, np.cumsum(gt_counts)],
                              gallery.tgt_boxes[gt_order], pair_dets, det_thresh,
                              iou_thresh)


def _in_gallery(g: SearchGallery, qpos: np.ndarray, img: np.ndarray, own_img: np.ndarray,
                image_cams: Optional[np.ndarray]) -> np.ndarray:
    """Whether image ``img[k]`` is in the gallery of protocol query ``qpos[k]``, whose
    own image is ``own_img[k]``."""
    if g.kind == 'listed':
        n_img = int(max(img.max(initial=-1), g.gal_images.max(initial=-1))) + 1
        owner = np.repeat(np.arange(g.num_queries, dtype=np.int64), np.diff(g.gal_offsets))
        listed = np.unique(owner * n_img + g.gal_images)
        key = qpos * n_img + img
        found = np.minimum(np.searchsorted(listed, key), max(len(listed) - 1, 0))
        return (listed[found] == key) if len(listed) else np.zeros(len(key), bool)
    keep = img != own_img  # all_but_query: every image but the query's own
    if g.cross_camera:
        if image_cams is None:
            raise ValueError(f'protocol {g.name!r} is cross-camera: image_cams is needed')
        cams = np.asarray(image_cams, np.int64)
        keep &= cams[img] != cams[own_img]
    return keep
