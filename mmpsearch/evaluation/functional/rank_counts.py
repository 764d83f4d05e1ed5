# Copyright (c) mmpsearch contributors. All rights reserved.
"""Exact rank counts without sorting the gallery: bucket histograms + exact refinement.

The search protocol needs, for every true positive ``i`` of a query, how many gallery
items have a similarity ``>= t_i`` (AP, oimnetpp.md §6.1) and ``> t_i`` (its rank, for
top-k). Sorting every query's gallery (73k items × 2057 queries at PRW scale) is what
makes the public scripts slow. Instead:

1. similarities are computed once in float32 by a GEMM that also maps them onto bucket
   coordinates, ``x = s * scale + c0`` (an extra input column carries ``c0``), so
   ``floor(x)`` is the bucket of an item and one ``bincount`` per query gives the
   histogram;
2. a rigorous bound ``err_x`` on the float32 error (``< 0.5`` bucket) makes every item two
   or more buckets above a threshold's bucket strictly greater than it, and two or more
   below strictly smaller; only the items in the three buckets around a threshold are
   looked at individually ("band items");
3. a band item is compared only with the thresholds of its query in neighbouring
   buckets (``ThresholdTable``); where its float32 similarity is within ``eps`` (the
   same bound in similarity units) of one of them it gets its float64 similarity, else
   the float32 value already compares as the exact one would.

So counts are those of float64 similarities, exactly, in time linear in the gallery.
This module holds the pieces that do not know about protocols.
"""
from dataclasses import dataclass

import numpy as np
import torch

from .gallery import ranges_to_indices

_U32 = 2.0**-24  # unit roundoff of float32


@dataclass
class BucketGrid:
    """Mapping of similarities onto ``num_bins`` buckets with a proven error margin.

    Args:
        num_buckets (int): requested buckets over ``[-radius, radius]``; lowered when
            the embedding dimension would make one float32 GEMM error reach half a bucket.
        radius (float): bound on ``|s|`` (product of the largest embedding norms).
        dim (int): embedding dimension (length of each dot product).
    """
    num_buckets: int
    radius: float
    dim: int

    def __post_init__(self):
        radius = float(self.radius)
        self.radius = radius if radius > 0 and np.isfinite(radius) else 1.0
        # error of the float32 GEMM on x = scale * q.g + c0, in bucket units: Higham's
        # gamma_{D+1} bound on the D+1 products (each input rounded to float32 once)
        # times the sum of |terms| <= scale * R + c0 = num_buckets + 1
        per_unit = 1.01 * (self.dim + 4) * _U32
        max_b = int(0.45 / per_unit) - 2
        self.num_buckets = int(max(16, min(self.num_buckets, max_b)))
        self.num_bins = self.num_buckets + 2
        self.scale = self.num_buckets / (2.0 * self.radius)
        self.offset = self.num_buckets / 2.0 + 1.0
        self.err_x = per_unit * self.num_bins
        # half-width of the band of similarities that need float64 (plus the float64
        # rounding of the exact similarities themselves)
        self.eps = 1.01 * self.err_x / self.scale + 1e-14 * self.radius

    def augment_queries(self, feats: np.ndarray) -> torch.Tensor:
        """(c, D) query embeddings → (c, D+1) float32 rows ``[scale*q, c0]``."""
        q = torch.as_tensor(np.asarray(feats, np.float64) * self.scale,
                            dtype=torch.float32)
        return torch.cat([q, torch.full((len(q), 1), self.offset, dtype=torch.float32)],
                         dim=1)

    @staticmethod
    def augment_gallery(feats: np.ndarray) -> torch.Tensor:
        """(M, D) gallery embeddings → (D+1, M) float32 ``[g, 1]^T`` (contiguous)."""
        feats = np.asarray(feats)
        out = np.empty((feats.shape[1] + 1, len(feats)), np.float32)
        out[:-1] = feats.T
        out[-1] = 1.0
        return torch.from_numpy(out)

    def bucket_coords(self, q_aug: torch.Tensor, g_aug_t: torch.Tensor) -> np.ndarray:
        """(c, M) float32 bucket coordinates ``x`` of every query/gallery pair.

        The error bound assumes a true float32 GEMM, so a lower global matmul precision
        (``torch.set_float32_matmul_precision('medium')`` may use bfloat16) is lifted for
        the call, and so is a CPU autocast context the caller may be in (it would run
        ``mm`` in bfloat16/float16).
        """
        prec = torch.get_float32_matmul_precision()
        try:
            if prec != 'highest':
                torch.set_float32_matmul_precision('highest')
            with torch.autocast(device_type='cpu', enabled=False):
                return torch.mm(q_aug.float(), g_aug_t.float()).numpy()
        finally:
            if prec != 'highest':
                torch.set_float32_matmul_precision(prec)

    def check(self, x: np.ndarray, q64: np.ndarray, g64: np.ndarray) -> None:
        """Spot-check the error bound on a fixed sample of pairs (cheap insurance
        against a BLAS that does not compute in float32)."""
        if x.size == 0:
            return
        r = np.arange(0, x.shape[0], max(1, x.shape[0] // 8))
        c = np.linspace(0, x.shape[1] - 1, min(x.shape[1], 64)).astype(np.int64)
        exact = q64[r] @ np.asarray(g64[c], np.float64).T * self.scale + self.offset
        err = np.abs(x[np.ix_(r, c)] - exact).max()
        if not err <= self.err_x:
            raise RuntimeError(f'the float32 similarity GEMM is off by {err:.3g} buckets, '
                               f'more than its bound {self.err_x:.3g}: the BLAS does not '
                               'compute in float32; the evaluation cannot be exact')

    def bucket_of(self, sims: np.ndarray) -> np.ndarray:
        """Bucket of exact (float64) similarities, clipped to the valid range."""
        b = np.floor(np.asarray(sims, np.float64) * self.scale + self.offset)
        return np.clip(b, 0, self.num_bins - 1).astype(np.int64)

    def sims_from_coords(self, x: np.ndarray) -> np.ndarray:
        """Approximate similarity (within ``eps``) back from float32 coordinates."""
        return (np.asarray(x, np.float64) - self.offset) / self.scale


class ThresholdTable:
    """The thresholds of each group sorted by value, with lookups by bucket.

    The thresholds of group ``g`` in buckets ``[lo, hi)`` are sorted positions
    ``[pos(g, lo), pos(g, hi))`` (the bucket is monotone in the value). ``pos`` is a binary
    search over the (group, bucket) keys, or, when many lookups are expected, a dense
    (group, bucket) table of cumulative counts.

    Args:
        thr_g (np.ndarray): (K,) group of each threshold, in ``[0, num_groups)``.
        thr_t (np.ndarray): (K,) threshold values.
        grid (BucketGrid): the bucket grid.
        num_groups (int): number of groups.
        lookups (int): expected number of lookups (chooses the dense table when it
            pays, i.e. when ``lookups * 20 > num_groups * num_bins``).
    """

    def __init__(self, thr_g, thr_t, grid: BucketGrid, num_groups: int, lookups: int = 0):
        nb = grid.num_bins
        thr_g = np.asarray(thr_g, np.int64)
        thr_t = np.asarray(thr_t, np.float64)
        self.order = np.lexsort((thr_t, thr_g))
        self.g, self.t = thr_g[self.order], thr_t[self.order]
        self.nb = nb
        self.keys = self.g * nb + grid.bucket_of(self.t)
        self.count = None
        if lookups * 20 > num_groups * nb:
            per = np.bincount(self.keys, minlength=num_groups * nb).reshape(num_groups, nb)
            self.count = np.zeros((num_groups, nb + 1), np.int64)
            np.cumsum(per, axis=1, out=self.count[:, 1:])
            size = self.count[:, -1]
            self.start = np.cumsum(size) - size

    def pos(self, g, b):
        """Sorted position of the first threshold of group ``g`` in bucket ``>= b``."""
        b = np.clip(b, 0, self.nb)
        if self.count is not None:
            return self.start[g] + self.count[g, b]
        return np.searchsorted(self.keys, g * self.nb + b, 'left')

    def neighbour_pairs(self, g, b):
        """(item, sorted threshold position) pairs with buckets at most one apart."""
        g = np.asarray(g, np.int64)
        lo, hi = self.pos(g, b - 1), self.pos(g, b + 2)
        n = np.maximum(hi - lo, 0)
        return np.repeat(np.arange(len(g), dtype=np.int64), n), ranges_to_indices(lo, n)
