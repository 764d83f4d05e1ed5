# Copyright (c) mmpsearch contributors. All rights reserved.
"""Context bipartite graph matching (CBGM) re-ranking, as SeqNet introduced it and
OIMNet++/COAT/PSTR ship it (off by default everywhere; oimnetpp.md §6.2).

For one query and one of the gallery images that hold its ``k1`` most similar detections
(over the whole gallery), the released code

1. takes the query's *context*: the query box itself plus the ``k2 - 1`` most confident
   other persons detected in the query image;
2. builds the complete bipartite graph context × detections of the gallery image, edge
   weight = cosine similarity, and solves the maximum-weight matching (Kuhn–Munkres;
   every node of the smaller side is matched);
3. if the query box is matched to detection ``j``, replaces the similarity of ``j`` by the
   **largest weight among the matched edges** (``get_max_value_result`` of SeqNet's
   ``km.py``; not the sum, despite the paper's wording).

The released context comes from a second pass over the query image in which the
annotated query box is added as a detection with score 1 before NMS, so detections that
overlap the query box by more than the NMS IoU (0.4 in SeqNet/OIMNet++) are suppressed.
Here the context is built from the stored detections of the query image: those with
score >= det_thresh and IoU <= ``context_iou`` with the query box, by decreasing score.
(A detection that the model's own NMS suppressed only because of a now-removed one cannot
come back; this can differ from the two-pass code in rare crowded cases.)

scipy's ``linear_sum_assignment`` replaces the hand-written Kuhn–Munkres; both return a
maximum-weight matching (they may pick different matchings only when several have the
same total weight).
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from .gallery import DetectionSet, QuerySet
from .iou import paired_iou


@dataclass
class CBGMOptions:
    """CBGM parameters.

    Args:
        k1 (int): re-rank the images of the ``k1`` most similar gallery detections
            (SeqNet: 10 on CUHK-SYSU, 30 on PRW).
        k2 (int): context size including the query itself (SeqNet: 3 CUHK-SYSU, 4 PRW).
        context_iou (float): detections of the query image overlapping the query box by
            more than this are the query itself, not context (the NMS IoU of the
            two-pass released code, 0.4).
    """
    k1: int = 10
    k2: int = 3
    context_iou: float = 0.4

    def __post_init__(self):
        if self.k1 < 1 or self.k2 < 1:
            raise ValueError(f'CBGM needs k1 >= 1 and k2 >= 1, got {self.k1}, {self.k2}')


def query_context(queries: QuerySet, dets: DetectionSet,
                  opts: CBGMOptions) -> List[np.ndarray]:
    """Context embeddings of every query: row 0 the query, then up to ``k2 - 1`` persons.

    Args:
        queries (QuerySet): all queries.
        dets (DetectionSet): kept detections of every test image.
        opts (CBGMOptions): parameters.

    Returns:
        list[np.ndarray]: per query row, a (1 + n, D) float64 array.
    """
    out = []
    for q in range(len(queries.feats)):
        i = queries.image_idx[q]
        s, e = dets.offsets[i], dets.offsets[i + 1]
        order = np.argsort(-dets.scores[s:e], kind='stable')
        iou = paired_iou(dets.bboxes[s:e][order],
                         np.repeat(queries.bboxes[q:q + 1], len(order), axis=0))
        keep = order[iou <= opts.context_iou][:max(opts.k2 - 1, 0)]
        out.append(np.vstack([np.asarray(queries.feats[q], np.float64)[None],
                              np.asarray(dets.feats[s:e][keep], np.float64)]))
    return out


def cbgm_rerank_image(context: np.ndarray,
                      feats: np.ndarray) -> Optional[Tuple[int, float]]:
    """Match a query's context to one gallery image's detections.

    Args:
        context (np.ndarray): (K, D) float64, row 0 the query.
        feats (np.ndarray): (N, D) float64 embeddings of the image's detections.

    Returns:
        tuple[int, float] | None: the detection matched to the query and its new
        similarity (the largest matched weight), or None when the query is unmatched.
    """
    if len(feats) == 0:
        return None
    weights = context @ feats.T
    r, c = linear_sum_assignment(weights, maximize=True)
    hit = np.nonzero(r == 0)[0]
    if len(hit) == 0:
        return None
    return int(c[hit[0]]), float(weights[r, c].max())
