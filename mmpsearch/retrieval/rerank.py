# Copyright (c) mmpsearch contributors. All rights reserved.
"""CBGM re-ranking of index hits with the metric's implementation
(:mod:`mmpsearch.evaluation.functional.cbgm`).

The query's context (the query plus the most confident other persons of its image,
:func:`query_context`) is matched against every detection of each frame holding one of
the ``k1`` best hits; the detection matched to the query takes the largest matched
weight as its similarity, as in ``PersonSearchMetric(cbgm=True)``.
"""
from typing import Sequence, Tuple

import numpy as np

from mmpsearch.evaluation.functional import (CBGMOptions, DetectionSet, QuerySet,
                                             cbgm_rerank_image, query_context)


def build_context(query_embedding: np.ndarray, query_bbox: Sequence[float],
                  det_bboxes: np.ndarray, det_scores: np.ndarray, det_embeddings: np.ndarray,
                  opts: CBGMOptions) -> np.ndarray:
    """(1 + n, D) context of a query from the detections of its own image."""
    n = len(det_scores)
    dets = DetectionSet(np.array([0, n]), np.asarray(det_bboxes).reshape(-1, 4),
                        np.asarray(det_scores), np.asarray(det_embeddings).reshape(
                            n, -1) if n else np.zeros((0, len(query_embedding))))
    queries = QuerySet(np.asarray(query_embedding)[None], np.array([0]),
                       np.asarray(query_bbox, np.float64)[None])
    return query_context(queries, dets, opts)[0]


def cbgm_rerank(index, rows: np.ndarray, sims: np.ndarray, context: np.ndarray,
                k1: int = 10) -> Tuple[np.ndarray, np.ndarray]:
    """Re-rank one query's hits.

    Args:
        index (GalleryIndex): the index the rows come from.
        rows (np.ndarray): (K,) ranked global rows.
        sims (np.ndarray): (K,) their similarities.
        context (np.ndarray): (C, D) query context (row 0 the query).
        k1 (int): frames of the ``k1`` best hits are re-ranked.

    Returns:
        tuple: rows and similarities, re-sorted (similarity desc, row asc).
    """
    new = {int(r): float(s) for r, s in zip(rows, sims)}
    done = set()
    for r in rows[:k1]:
        frame = index.frame_rows(int(r))
        if int(frame[0]) in done:
            continue
        done.add(int(frame[0]))
        match = cbgm_rerank_image(np.asarray(context, np.float64), index.embeddings(frame))
        if match is not None:
            new[int(frame[match[0]])] = match[1]
    out_rows = np.fromiter(new.keys(), np.int64, len(new))
    out_sims = np.fromiter(new.values(), np.float64, len(new))
    order = np.lexsort((out_rows, -out_sims))
    return out_rows[order], out_sims[order]
