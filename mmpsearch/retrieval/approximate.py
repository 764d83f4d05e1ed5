# Copyright (c) mmpsearch contributors. All rights reserved.
"""Approximate search with FAISS (the optional ``mmpsearch[index]`` extra).

The FAISS index only proposes a shortlist: its compressed codes (IVF-PQ by default)
rank roughly, then the shortlist is re-scored exactly in float64 from the stored
embeddings (:func:`mmpsearch.retrieval.exact.rescore`), so every similarity a hit
carries is exact and only recall depends on the approximation. FAISS ids are the
detections' uids, which never change when other detections are removed.

The index file is FAISS's own binary format (``faiss.read_index``), not a pickle.
"""
import os
import os.path as osp
from typing import Optional

import numpy as np

from .manifest import GalleryIndexError, IndexCorruptError

ANN_FILE = 'ann.faiss'


def import_faiss():
    """``faiss``, or an error that says how to install it."""
    try:
        import faiss
    except ImportError as e:
        raise ImportError('the approximate backend needs FAISS: pip install '
                          '"mmpsearch[index]" (or faiss-cpu); the exact backend needs '
                          'nothing extra') from e
    return faiss


def default_factory(num_rows: int, dim: int) -> str:
    """An IVF-PQ description sized for ``num_rows``.

    About ``1.3 sqrt(N)`` inverted lists (a power of two, 4096 at 10M rows), found by a
    flat (brute-force) coarse quantiser, and 4-bit "fast-scan" product quantisation with
    ``dim / 2`` sub-quantisers (32 bytes per 128-d row, as 8-bit ``PQ{dim/4}``). Why:
    on the clustered rows of ``tools/analysis_tools/benchmark_index.py`` recall@10
    >= 0.95 needs about a quarter of the lists visited, so a query scans millions of
    codes at 10M rows; fast-scan scans them with SIMD lookups in registers several times
    faster than 8-bit PQ, and trains in a fifth of the time. Assigning rows to 4096
    centroids by brute force (one BLAS product per block) was measured faster than
    through an HNSW graph over the centroids (``IVF4096_HNSW32``), and a query's own
    assignment costs well under a millisecond either way (docs/benchmarks.md). Odd
    dimensions, which fast-scan cannot split in pairs, fall back to 8-bit PQ.
    """
    nlist = int(max(16, min(65536, 2 ** round(np.log2(1.3 * np.sqrt(max(num_rows, 1)))))))
    if dim % 2 == 0:
        return f'IVF{nlist},PQ{dim // 2}x4fs'
    m = max(1, dim // 4)
    while dim % m:
        m -= 1
    return f'IVF{nlist},PQ{m}'


class ApproximateIndex:
    """A FAISS index over uids with a tunable search breadth.

    Args:
        index: the FAISS index (IVF* with ids, or wrapped in ``IndexIDMap2``).
        nprobe (int): inverted lists visited per query (IVF indexes).
    """

    def __init__(self, index, nprobe: int = 32):
        self.index = index
        self.faiss = import_faiss()
        self.set_nprobe(nprobe)

    def set_nprobe(self, nprobe: int) -> None:
        ivf = self._ivf()
        if ivf is not None:
            ivf.nprobe = int(nprobe)
            quantiser = self.faiss.downcast_index(ivf.quantizer)
            if hasattr(quantiser, 'hnsw'):  # the graph must return nprobe lists
                quantiser.hnsw.efSearch = max(2 * int(nprobe), 64)

    def _ivf(self):
        try:
            return self.faiss.extract_index_ivf(self.index)
        except RuntimeError:
            return None

    @property
    def nlist(self) -> int:
        """Inverted lists (0 for an index without)."""
        ivf = self._ivf()
        return int(ivf.nlist) if ivf is not None else 0

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def train(cls, sample: np.ndarray, factory: str, nprobe: int = 32, seed: int = 0,
              niter: int = 10) -> 'ApproximateIndex':
        """Build an empty index and train it on ``sample`` ((S, D) rows)."""
        faiss = import_faiss()
        dim = sample.shape[1]
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        try:
            faiss.extract_index_ivf(index)
        except RuntimeError:  # HNSW, flat...: ids through a map
            index = faiss.IndexIDMap2(index)
        try:
            ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
            ivf.cp.seed = seed
            ivf.cp.niter = niter  # k-means iterations of the coarse quantiser
            # polysemous codes only serve Hamming filtering of L2 searches; training them
            # costs minutes and nothing here uses them
            if hasattr(ivf, 'do_polysemous_training'):
                ivf.do_polysemous_training = False
        except RuntimeError:
            pass
        if not index.is_trained:
            index.train(np.ascontiguousarray(sample, np.float32))
        return cls(index, nprobe)

    def add(self, embeddings: np.ndarray, uids: np.ndarray) -> None:
        self.index.add_with_ids(np.ascontiguousarray(embeddings, np.float32),
                                np.ascontiguousarray(uids, np.int64))

    def remove(self, uids: np.ndarray) -> int:
        sel = self.faiss.IDSelectorBatch(np.ascontiguousarray(uids, np.int64))
        return int(self.index.remove_ids(sel))

    def search(self, queries: np.ndarray, shortlist: int) -> np.ndarray:
        """(Q, shortlist) uids (-1 where fewer were found)."""
        _, ids = self.index.search(np.ascontiguousarray(queries, np.float32), int(shortlist))
        return ids

    def save(self, index_dir: str) -> str:
        path = osp.join(index_dir, ANN_FILE)
        tmp = path + '.part'
        self.faiss.write_index(self.index, tmp)
        os.replace(tmp, path)
        return ANN_FILE

    @classmethod
    def load(cls, index_dir: str, info: dict, dim: int,
             nprobe: Optional[int] = None) -> 'ApproximateIndex':
        faiss = import_faiss()
        path = osp.join(index_dir, info.get('file', ANN_FILE))
        if not osp.isfile(path):
            raise IndexCorruptError(f'approximate index file {path} is missing (the '
                                    'manifest lists it); rebuild it with '
                                    'tools/index/build.py INDEX --ann or drop --backend')
        try:
            index = faiss.read_index(path)
        except RuntimeError as e:
            raise IndexCorruptError(f'approximate index file {path} is damaged: '
                                    f'{str(e).splitlines()[0] if str(e) else e}') from e
        if index.d != dim:
            raise IndexCorruptError(f'{path} indexes {index.d}-d vectors, the index holds '
                                    f'{dim}-d embeddings')
        return cls(index, nprobe if nprobe is not None else int(info.get('nprobe', 32)))


def check_available() -> None:
    """Raise a :class:`GalleryIndexError` naming the extra when FAISS is missing."""
    try:
        import_faiss()
    except ImportError as e:
        raise GalleryIndexError(str(e)) from e
