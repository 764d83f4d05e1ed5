# Copyright (c) mmpsearch contributors. All rights reserved.
"""Exact top-k search over memory-mapped embedding blocks.

The gallery is scanned block by block with one float32 matrix product per block
(``(B, D) @ (D, Q)``), so memory stays at one block whatever the gallery size. float32
products can misorder near-equal similarities, so the ranking is made exact in float64:

* every detection whose float32 similarity is within ``margin`` of the running k-th best
  is kept as a candidate; ``margin`` bounds twice the float32 rounding error of a dot
  product of unit vectors, so no detection of the float64 top-k is ever dropped;
* the candidates are re-scored in float64 from the stored embeddings and sorted by
  decreasing similarity, equal similarities by increasing row (earlier-added first).

The result is therefore the float64 ranking of the stored embeddings, the ranking that
``PersonSearchMetric`` computes for the same embeddings (``tie_order='stable'``).
"""
from typing import List, Sequence, Tuple

import numpy as np

BLOCK_ROWS = 1 << 17


def rounding_margin(dim: int) -> float:
    """Twice a bound on the float32 error of a dot product of two unit D-vectors
    (``D`` products and sums, plus the rounding of a float64 query to float32)."""
    return 2.0 * (dim + 4) * 2.0 ** -24


class RowStore:
    """Embeddings of all shards seen as one array of global rows.

    Args:
        blocks (Sequence[np.ndarray]): per shard (N_s, D) arrays (memmaps), in row order.
    """

    def __init__(self, blocks: Sequence[np.ndarray]):
        self.blocks = list(blocks)
        sizes = np.array([len(b) for b in self.blocks], np.int64)
        self.offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), D) float64 embeddings of global ``rows``."""
        rows = np.asarray(rows, np.int64)
        dim = self.blocks[0].shape[1] if self.blocks else 0
        out = np.empty((len(rows), dim), np.float64)
        shard = np.searchsorted(self.offsets, rows, side='right') - 1
        for s in np.unique(shard):
            sel = np.nonzero(shard == s)[0]
            local = rows[sel] - self.offsets[s]
            order = np.argsort(local)  # ordered reads of the memmap
            out[sel[order]] = self.blocks[s][local[order]]
        return out

    def iter_blocks(self, block_rows: int = BLOCK_ROWS):
        """Yield ``(first global row, (B, D) float32 array)``."""
        for s, arr in enumerate(self.blocks):
            for a in range(0, len(arr), block_rows):
                yield int(self.offsets[s]) + a, np.asarray(arr[a:a + block_rows], np.float32)


def rescore(store: RowStore, queries: np.ndarray, candidates: Sequence[np.ndarray],
            topk: int) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """float64 similarities of each query's candidate rows; the ``topk`` best by
    (similarity desc, row asc).

    Returns:
        tuple[list, list]: per query, rows (int64) and similarities (float64).
    """
    rows_out, sims_out = [], []
    q64 = np.asarray(queries, np.float64)
    for q, cand in enumerate(candidates):
        cand = np.unique(np.asarray(cand, np.int64))
        sims = store.gather(cand) @ q64[q] if len(cand) else np.zeros(0)
        order = np.lexsort((cand, -sims))[:topk]
        rows_out.append(cand[order])
        sims_out.append(sims[order])
    return rows_out, sims_out


def exact_search(store: RowStore, queries: np.ndarray, topk: int,
                 block_rows: int = BLOCK_ROWS) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Exact top-``topk`` rows of each query by inner product.

    Args:
        store (RowStore): the gallery embeddings.
        queries (np.ndarray): (Q, D) L2-normalised queries.
        topk (int): hits per query.
        block_rows (int): rows per matrix product.

    Returns:
        tuple[list, list]: per query, (k,) int64 global rows and (k,) float64
        similarities, best first (k = min(topk, rows)).
    """
    queries = np.atleast_2d(np.asarray(queries, np.float64))
    n_q, dim = queries.shape
    if len(store) == 0 or topk <= 0:
        return [np.zeros(0, np.int64)] * n_q, [np.zeros(0)] * n_q
    k = min(int(topk), len(store))
    margin = rounding_margin(dim)
    q32 = np.ascontiguousarray(queries.T, np.float32)  # (D, Q)
    cand_rows: List[List[np.ndarray]] = [[] for _ in range(n_q)]
    cand_sims: List[List[np.ndarray]] = [[] for _ in range(n_q)]
    kth = np.full(n_q, -np.inf)  # running k-th best float32 similarity of each query
    for start, block in store.iter_blocks(block_rows):
        sims = block @ q32  # (B, Q)
        m = min(k, len(block))
        top = np.argpartition(-sims, m - 1, axis=0)[:m] if m < len(block) else \
            np.broadcast_to(np.arange(len(block))[:, None], (len(block), n_q))
        for q in range(n_q):
            rows, vals = top[:, q], sims[top[:, q], q]
            allr = np.concatenate(cand_rows[q] + [rows + start])
            allv = np.concatenate(cand_sims[q] + [vals])
            if len(allv) >= k:
                kth[q] = np.partition(allv, len(allv) - k)[len(allv) - k]
            bound = kth[q] - margin
            # near-ties below the block's own top m: take them all (rare)
            if m < len(block) and vals.min() >= bound:
                more = np.nonzero(sims[:, q] >= bound)[0]
                allr = np.concatenate(cand_rows[q] + [more + start])
                allv = np.concatenate(cand_sims[q] + [sims[more, q]])
            keep = allv >= bound
            cand_rows[q], cand_sims[q] = [allr[keep]], [allv[keep]]
    return rescore(store, queries, [c[0] for c in cand_rows], k)
