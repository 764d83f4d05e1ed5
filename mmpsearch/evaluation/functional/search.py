# Copyright (c) mmpsearch contributors. All rights reserved.
"""Vectorised person-search evaluation (oimnetpp.md §6.1–6.3, spnet.md §7.3).

Per query the standard protocol ranks every kept detection of its gallery by cosine
similarity, labels in each gallery image that holds the target only the most similar
detection whose IoU with the target reaches ``min(0.5, wh/((w+10)(h+10)))``, and reports
``AP × recall`` (AP as scikit-learn computes it, recall = matched / ``count_gt``) and
whether a true positive is within the first 1/5/10 ranks. :func:`evaluate_search` gives
exactly those numbers (the tests compare it with a plain per-query loop,
``reference.reference_search``, to 1e-9) for many protocols at once:

* one float32 GEMM per chunk of queries against all detections, shared by all protocols;
* ranks from bucket histograms with exact float64 refinement near each true positive's
  similarity (``rank_counts``, ``search_chunk``), so nothing is sorted per query;
* targets, true positives, AP and top-k are grouped array operations over the chunk.

The cost is one GEMM plus a few linear passes per query over the detections ranked at
or above its lowest true positive (all of them for an untrained model).

Equal similarities: AP takes a tie as one block (as scikit-learn does). Top-k follows the
released ``np.argsort(y_score)[::-1]`` with a stable sort (``tie_order='reversed'``: of
equal scores, the later-appended detection ranks first) or a stable descending sort
(``'stable'``: the earlier one first). Detections are appended gallery image by gallery
image (first listing order); inside an image holding the target, in decreasing
similarity with ties broken the same way.
"""
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from .cbgm import CBGMOptions, query_context
from .gallery import DetectionSet, QuerySet, SearchGallery, ranges_to_indices
from .rank_counts import BucketGrid
from .search_chunk import SearchChunk

TOPK = (1, 5, 10)
TIE_ORDERS = ('reversed', 'stable')


@dataclass
class SearchResult:
    """Per-query outcome of one protocol.

    Attributes:
        name (str): protocol name.
        ap (np.ndarray): (Qp,) ``AP × recall``; 0 when nothing matched.
        topk (np.ndarray): (Qp, 3) bool, a true positive within the first 1/5/10 ranks.
        count_tp (np.ndarray): (Qp,) matched gallery images.
        count_gt (np.ndarray): (Qp,) gallery entries holding the target (recall base).
        num_items (np.ndarray): (Qp,) ranked gallery detections (0: no detection at all).
    """
    name: str
    ap: np.ndarray
    topk: np.ndarray
    count_tp: np.ndarray
    count_gt: np.ndarray
    num_items: np.ndarray


class _Columns:
    """Detections re-ordered as GEMM columns (grouped by camera when a cross-camera
    protocol needs each camera's images to be one contiguous block)."""

    def __init__(self, dets: DetectionSet, image_cams: np.ndarray, by_cam: bool):
        n_img = dets.num_images
        counts = dets.counts
        order = (np.lexsort((np.arange(n_img), image_cams)) if by_cam else
                 np.arange(n_img, dtype=np.int64))
        self.src = ranges_to_indices(dets.offsets[:-1][order], counts[order])
        self.img_start = np.empty(n_img, np.int64)
        self.img_start[order] = np.cumsum(counts[order]) - counts[order]
        self.img_count = counts
        self.image = dets.image_index()[self.src]
        self.local = dets.local_index()[self.src]
        self.bboxes = dets.bboxes[self.src]
        # embeddings in their own dtype; float64 copies only of the rows that need it
        self.feats = dets.feats[self.src]
        self.num = len(self.src)
        # camera block [start, end) of each image's camera (columns are cam-sorted)
        if by_cam:
            cam_sorted = image_cams[order]
            first = np.r_[True, cam_sorted[1:] != cam_sorted[:-1]]
            block = np.cumsum(first) - 1
            starts = self.img_start[order][first]
            ends = np.r_[starts[1:], self.num]
            self.cam_start = np.empty(n_img, np.int64)
            self.cam_end = np.empty(n_img, np.int64)
            self.cam_start[order] = starts[block]
            self.cam_end[order] = ends[block]

    def cols_of(self, images: np.ndarray):
        """Columns of ``images`` and, for each, the position of its image in the list."""
        cnt = self.img_count[images]
        return (ranges_to_indices(self.img_start[images], cnt),
                np.repeat(np.arange(len(images), dtype=np.int64), cnt))


class _ExactSims:
    """float64 similarities of (chunk row, column) pairs.

    Values computed with ``cache=True`` (true-positive candidates, CBGM candidates) are
    kept, and every later request for the same pair returns the kept value, so a true
    positive's similarity ``t`` and its own entry among the band items are identical
    bit for bit whatever the summation order of a batch.
    """

    def __init__(self, q64: np.ndarray, feats: np.ndarray, num_cols: int):
        self.q64, self.feats, self.m = q64, feats, num_cols
        self.keys = np.zeros(0, np.int64)
        self.vals = np.zeros(0, np.float64)

    def _dots(self, r, c):
        """Dot products of pairs, one pass per chunk row (rows come sorted).

        ``einsum`` reduces every pair alike; a gemv (``A @ q``) sums a row in an order
        that depends on its position in the call, so identical embeddings would get
        similarities that differ in the last bit and a tie would be ranked by rounding
        instead of ``tie_order``."""
        order = np.argsort(r, kind='stable')
        rs, cs = r[order], c[order]
        vals = np.empty(len(r))
        cut = np.r_[0, np.nonzero(rs[1:] != rs[:-1])[0] + 1, len(rs)]
        for a, b in zip(cut[:-1], cut[1:]):
            vals[order[a:b]] = np.einsum('ij,j->i', np.asarray(self.feats[cs[a:b]], np.float64),
                                         self.q64[rs[a]])
        return vals

    def _lookup(self, key):
        pos = np.minimum(np.searchsorted(self.keys, key), max(len(self.keys) - 1, 0))
        known = (self.keys[pos] == key) if len(self.keys) else np.zeros(len(key), bool)
        return pos, known

    def get(self, rows: np.ndarray, cols: np.ndarray, cache: bool = True) -> np.ndarray:
        key = np.asarray(rows, np.int64) * self.m + np.asarray(cols, np.int64)
        if len(key) == 0:
            return np.zeros(0)
        pos, known = self._lookup(key)
        out = np.empty(len(key))
        out[known] = self.vals[pos[known]]
        todo = ~known
        if todo.any():
            if cache:
                new = np.unique(key[todo])
                vals = self._dots(new // self.m, new % self.m)
                keys = np.r_[self.keys, new]
                order = np.argsort(keys, kind='stable')
                self.keys, self.vals = keys[order], np.r_[self.vals, vals][order]
                pos, _ = self._lookup(key[todo])
                out[todo] = self.vals[pos]
            else:
                out[todo] = self._dots(key[todo] // self.m, key[todo] % self.m)
        return out


def evaluate_search(queries: QuerySet,
                    dets: DetectionSet,
                    galleries: Sequence[SearchGallery],
                    image_cams: Optional[np.ndarray] = None,
                    tie_order: str = 'reversed',
                    cbgm: Optional[CBGMOptions] = None,
                    chunk_size: int = 128,
                    num_buckets: int = 16384,
                    progress: Optional[Callable[[int], None]] = None
                    ) -> Dict[str, SearchResult]:
    """Run the search protocol of every gallery on one set of detections.

    Args:
        queries (QuerySet): all queries (rows referenced by ``gallery.query_rows``).
        dets (DetectionSet): the gallery "detections" of every test image, already
            restricted to ``score >= det_thresh`` (or the annotated boxes).
        galleries (Sequence[SearchGallery]): protocols to evaluate.
        image_cams (np.ndarray, optional): (I,) camera of each image (cross-camera
            protocols).
        tie_order (str): ``'reversed'`` (released) or ``'stable'``, see module doc.
        cbgm (CBGMOptions, optional): re-rank with context bipartite graph matching.
        chunk_size (int): queries per GEMM.
        num_buckets (int): histogram resolution (speed only; results are exact).
        progress (Callable[[int], None], optional): called with the number of queries
            finished after each chunk.

    Returns:
        dict[str, SearchResult]: per protocol name.
    """
    return evaluate_search_sets(queries, {'': dets}, galleries, image_cams, tie_order, cbgm,
                                chunk_size, num_buckets, progress)['']


def evaluate_search_sets(queries: QuerySet,
                         det_sets: Dict[str, DetectionSet],
                         galleries: Sequence[SearchGallery],
                         image_cams: Optional[np.ndarray] = None,
                         tie_order: str = 'reversed',
                         cbgm: Optional[CBGMOptions] = None,
                         chunk_size: int = 128,
                         num_buckets: int = 16384,
                         progress: Optional[Callable[[int], None]] = None
                         ) -> Dict[str, Dict[str, SearchResult]]:
    """:func:`evaluate_search` for several detection sets of the same images (the
    detections and the annotated boxes), sharing the per-chunk gallery tables.

    Args:
        det_sets (dict[str, DetectionSet]): named detection sets; CBGM, if given,
            applies to the first one only.
        Others: as :func:`evaluate_search`.

    Returns:
        dict[str, dict[str, SearchResult]]: per set, per protocol name.
    """
    if tie_order not in TIE_ORDERS:
        raise ValueError(f'tie_order must be one of {TIE_ORDERS}, got {tie_order!r}')
    first = next(iter(det_sets.values()))
    n_img = first.num_images
    image_cams = (np.full(n_img, -1, np.int64) if image_cams is None else
                  np.asarray(image_cams, np.int64))
    by_cam = any(g.kind == 'all_but_query' and g.cross_camera for g in galleries)
    q_rows = (np.unique(np.concatenate([g.query_rows for g in galleries]))
              if galleries else np.zeros(0, np.int64))
    q64 = np.asarray(queries.feats, np.float64)
    q_norm = np.linalg.norm(q64[q_rows], axis=1).max() if len(q_rows) else 0.
    row_maps = [_row_map(g, len(q64)) for g in galleries]
    shared = {}
    for k, (name, dets) in enumerate(det_sets.items()):
        if dets.num_images != n_img:
            raise ValueError(f'detection set {name!r} covers {dets.num_images} images, '
                             f'not {n_img}')
        cols = _Columns(dets, image_cams, by_cam)
        g_norm = np.sqrt(np.einsum('ij,ij->i', cols.feats, cols.feats, dtype=np.float64)
                         .max()) if cols.num else 0.
        # |s| bound; max(q, g) also covers CBGM weights between two detections
        grid = BucketGrid(num_buckets, max(q_norm, g_norm) * g_norm * (1 + 1e-6),
                          q64.shape[1])
        use_cbgm = cbgm if k == 0 else None
        sh = SimpleNamespace(
            queries=queries, q64=q64, cols=cols, grid=grid,
            g_aug=grid.augment_gallery(cols.feats), galleries=list(galleries),
            qi_of_row=row_maps, out={}, tie_order=tie_order, cbgm=use_cbgm,
            qctx=query_context(queries, dets, use_cbgm) if use_cbgm is not None else None)
        for g in galleries:
            sh.out[g.name] = SearchResult(
                g.name, np.zeros(g.num_queries), np.zeros((g.num_queries, len(TOPK)), bool),
                np.zeros(g.num_queries, np.int64), np.asarray(g.count_gt, np.int64).copy(),
                _num_items(g, queries, cols))
        shared[name] = sh
    for cs in range(0, len(q_rows), chunk_size):
        rows = q_rows[cs:cs + chunk_size]
        tables = {}  # per-chunk gallery tables, the same for every detection set
        for sh in shared.values():
            SearchChunk(sh, rows, _ExactSims(q64[rows], sh.cols.feats, sh.cols.num),
                        tables).run()
            if progress is not None:
                progress(len(rows))
    return {name: sh.out for name, sh in shared.items()}


def _num_items(g: SearchGallery, queries: QuerySet, cols: _Columns) -> np.ndarray:
    """Detections in each query's gallery (ranked items), from per-image counts."""
    if g.kind == 'all_but_query':
        own = queries.image_idx[g.query_rows]
        if g.cross_camera:
            return cols.num - (cols.cam_end[own] - cols.cam_start[own])
        return cols.num - cols.img_count[own]
    # summed in row blocks to keep the gathered counts small
    out = np.zeros(g.num_queries, np.int64)
    step = max(1, (1 << 20) // max(int(np.diff(g.gal_offsets).max(initial=1)), 1))
    for a in range(0, g.num_queries, step):
        e = min(a + step, g.num_queries)
        lo, hi = g.gal_offsets[a], g.gal_offsets[e]
        per = np.r_[0, np.cumsum(cols.img_count[g.gal_images[lo:hi]])]
        out[a:e] = per[g.gal_offsets[a + 1:e + 1] - lo] - per[g.gal_offsets[a:e] - lo]
    return out


def _row_map(g: SearchGallery, num_rows: int) -> np.ndarray:
    """(Q,) position of each query row in protocol ``g`` (-1: not in it)."""
    out = np.full(num_rows, -1, np.int64)
    out[g.query_rows] = np.arange(g.num_queries)
    return out
