# Copyright (c) mmpsearch contributors. All rights reserved.
"""Plain containers that the vectorised protocol maths works on.

* :class:`DetectionSet`: the "detections" of every test image in CSR form (image ``i``
  owns rows ``offsets[i]:offsets[i+1]``), in the image's own order. For the search
  evaluation these are the detector's boxes; for the GT-box ("ReID") evaluation they are
  the annotated boxes (score 1, oimnetpp.md §6.5).
* :class:`QuerySet`: one row per query of ``search_protocol`` (image, box, embedding).
* :class:`SearchGallery`: one named protocol expanded into per-query galleries and targets
  (built by :func:`mmpsearch.evaluation.protocols.build_search_galleries`).

Pure numpy; nothing here knows about mmengine.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np


def ranges_to_indices(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + c)`` over paired ``starts``/``counts`` without a loop.

    Args:
        starts (np.ndarray): (K,) int range starts.
        counts (np.ndarray): (K,) non-negative int range lengths.

    Returns:
        np.ndarray: (sum(counts),) int64 indices.
    """
    starts = np.asarray(starts, np.int64)
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    # position i of the output belongs to range k: value = starts[k] + (i - first[k])
    first = np.cumsum(counts) - counts
    return np.repeat(starts - first, counts) + np.arange(total, dtype=np.int64)


@dataclass
class DetectionSet:
    """Detections (or annotated boxes) of all test images, CSR by image.

    Args:
        offsets (np.ndarray): (I+1,) int64; image ``i`` owns rows ``offsets[i]:offsets[i+1]``.
        bboxes (np.ndarray): (M, 4) float64 xyxy boxes in original image pixels.
        scores (np.ndarray): (M,) float64 scores.
        feats (np.ndarray): (M, D) float32/float64 L2-normalised embeddings.
    """
    offsets: np.ndarray
    bboxes: np.ndarray
    scores: np.ndarray
    feats: np.ndarray

    def __post_init__(self):
        self.offsets = np.asarray(self.offsets, np.int64)
        self.bboxes = np.asarray(self.bboxes, np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float64).reshape(-1)
        self.feats = np.asarray(self.feats)
        if self.feats.ndim != 2:
            raise ValueError(f'feats must be (M, D), got shape {self.feats.shape}')
        m = int(self.offsets[-1]) if self.offsets.size else 0
        if (self.offsets.ndim != 1 or self.offsets.size < 1 or self.offsets[0] != 0
                or np.any(np.diff(self.offsets) < 0)):
            raise ValueError('offsets must be a non-decreasing (I+1,) array from 0')
        if not (len(self.bboxes) == len(self.scores) == len(self.feats) == m):
            raise ValueError(f'{m} rows by offsets, but bboxes {len(self.bboxes)}, '
                             f'scores {len(self.scores)}, feats {len(self.feats)}')

    @property
    def num_images(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_dets(self) -> int:
        return int(self.offsets[-1])

    @property
    def counts(self) -> np.ndarray:
        """(I,) number of rows of each image."""
        return np.diff(self.offsets)

    def image_index(self) -> np.ndarray:
        """(M,) image of each row."""
        return np.repeat(np.arange(self.num_images, dtype=np.int64), self.counts)

    def local_index(self) -> np.ndarray:
        """(M,) position of each row inside its image."""
        return np.arange(self.num_dets, dtype=np.int64) - np.repeat(self.offsets[:-1],
                                                                   self.counts)

    def select(self, keep: np.ndarray) -> 'DetectionSet':
        """Keep the rows where ``keep`` is true (order kept, CSR rebuilt)."""
        keep = np.asarray(keep, bool)
        counts = np.bincount(self.image_index()[keep], minlength=self.num_images)
        return DetectionSet(np.r_[0, np.cumsum(counts)], self.bboxes[keep],
                            self.scores[keep], self.feats[keep])

    def above(self, score_thr: float) -> 'DetectionSet':
        """Rows with ``score >= score_thr`` (the protocol's ``det_thresh`` rule)."""
        return self.select(self.scores >= score_thr)


@dataclass
class QuerySet:
    """All queries of a test split, in ``search_protocol`` row order.

    Args:
        feats (np.ndarray): (Q, D) query embeddings.
        image_idx (np.ndarray): (Q,) int64 image of each query.
        bboxes (np.ndarray): (Q, 4) float64 query boxes (xyxy, original pixels).
    """
    feats: np.ndarray
    image_idx: np.ndarray
    bboxes: np.ndarray

    def __post_init__(self):
        self.feats = np.asarray(self.feats)
        self.image_idx = np.asarray(self.image_idx, np.int64).reshape(-1)
        self.bboxes = np.asarray(self.bboxes, np.float64).reshape(-1, 4)
        if not (len(self.feats) == len(self.image_idx) == len(self.bboxes)):
            raise ValueError('QuerySet fields have different lengths')


@dataclass
class SearchGallery:
    """One evaluation protocol, expanded per query.

    Every array indexed by ``qi`` refers to the protocol's own query list
    (``query_rows[qi]`` is the row in :class:`QuerySet`).

    Args:
        name (str): protocol name (``'G100'``, ``'standard'``, ...).
        kind (str): ``'listed'`` (explicit per-query image lists, CUHK-SYSU) or
            ``'all_but_query'`` (every test image but the query's own, PRW).
        query_rows (np.ndarray): (Qp,) int64 rows of the queries.
        count_gt (np.ndarray): (Qp,) int64 recall denominator of each query (gallery
            entries that contain the target, duplicates counted as the protocol says).
        tgt_offsets (np.ndarray): (Qp+1,) CSR over the targets of each query.
        tgt_images (np.ndarray): (T,) image holding each target (each image at most once
            per query: the box that labels that image's detections).
        tgt_boxes (np.ndarray): (T, 4) float64 target boxes.
        gal_offsets (np.ndarray, optional): listed only, (Qp+1,) CSR over ``gal_images``.
        gal_images (np.ndarray, optional): listed only, distinct gallery images of each
            query in the order of their first occurrence.
        gal_slots (np.ndarray, optional): listed only, the slot of that first occurrence
            (the position that decides the order of equal similarities).
        cross_camera (bool): all_but_query only; drop the images of the query's camera.
    """
    name: str
    kind: str
    query_rows: np.ndarray
    count_gt: np.ndarray
    tgt_offsets: np.ndarray
    tgt_images: np.ndarray
    tgt_boxes: np.ndarray
    gal_offsets: Optional[np.ndarray] = None
    gal_images: Optional[np.ndarray] = None
    gal_slots: Optional[np.ndarray] = None
    cross_camera: bool = False

    def __post_init__(self):
        if self.kind not in ('listed', 'all_but_query'):
            raise ValueError(f'unknown gallery kind {self.kind!r} in protocol {self.name!r}')
        if self.kind == 'listed' and self.gal_offsets is None:
            raise ValueError(f'listed protocol {self.name!r} needs gal_offsets/images/slots')

    @property
    def num_queries(self) -> int:
        return len(self.query_rows)

    def targets_of(self, qi: int):
        """(images, boxes) of query ``qi``'s targets."""
        s, e = self.tgt_offsets[qi], self.tgt_offsets[qi + 1]
        return self.tgt_images[s:e], self.tgt_boxes[s:e]
