# Copyright (c) mmpsearch contributors. All rights reserved.
"""``GalleryIndex``: detections and their embeddings, stored once, searched many times.

Example:
    >>> index = GalleryIndex.create('cctv.index', embedding_dim=128,
    ...                             model_config='spnet-s_...py', checkpoint_sha256=sha)
    >>> index.add(embeddings, sources=['cam1.mp4'] * n, frames=frames, times=times,
    ...           boxes=boxes, scores=scores)
    >>> result = GalleryIndex.open('cctv.index').search(query_embedding, topk=10)[0]
    >>> result.found, result.hits[0].source, result.hits[0].time, result.hits[0].box

Rows are numbered in the order they were added (shard by shard). Every detection also
gets a ``uid`` that never changes (the approximate backend's id). See
``manifest.py`` for the layout on disk and ``exact.py`` for the exact ranking rule.
"""
import os
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .exact import RowStore, exact_search, rescore
from .manifest import (GalleryIndexError, IndexMismatchError, Manifest, load_manifest,
                       save_manifest)
from .shards import (META_DTYPE, SHARD_DIR, Shard, open_shard, remove_shard_files,
                     write_shard)

BACKENDS = ('exact', 'approximate')
_NORM_TOL = 1e-4


@dataclass
class Hit:
    """One detection returned by a search.

    Attributes:
        rank (int): 1-based position.
        similarity (float): cosine similarity to the query (float64, exact).
        source (str): the image file, video file or image id it comes from.
        frame (int): frame index in a video (0 for an image).
        time (float): seconds from the start of the video (0 for an image).
        box (list[float]): x1, y1, x2, y2 in the frame's pixels.
        score (float): detector score.
        uid (int): the detection's permanent id in the index.
        row (int): its current row.
    """
    rank: int
    similarity: float
    source: str
    frame: int
    time: float
    box: List[float]
    score: float
    uid: int
    row: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class QueryResult:
    """Hits of one query.

    Attributes:
        hits (list[Hit]): best first; only those at or above ``threshold``.
        threshold (float, optional): the similarity threshold applied (None: none).
        found (bool): False when a threshold is set and no hit reaches it: the person is
            "not present" at the index's calibrated precision.
    """
    hits: List[Hit] = field(default_factory=list)
    threshold: Optional[float] = None
    found: bool = True

    @property
    def message(self) -> str:
        if self.found:
            return f'{len(self.hits)} hits'
        return f'not found above threshold {self.threshold:.4f} (not present)'

    def to_dict(self) -> dict:
        return dict(found=self.found, threshold=self.threshold, message=self.message,
                    hits=[h.to_dict() for h in self.hits])


def _normalise(x: np.ndarray, what: str) -> np.ndarray:
    """Rows scaled to unit length; rows that already are keep their exact values."""
    if not np.all(np.isfinite(x)):
        bad = np.nonzero(~np.isfinite(x).all(axis=1))[0]
        raise ValueError(f'{what}: row {int(bad[0])} is not finite (NaN/inf)')
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    if np.any(norms == 0):
        raise ValueError(f'{what}: row {int(np.nonzero(norms == 0)[0][0])} is all zeros')
    off = np.abs(norms - 1) > _NORM_TOL
    if off.any():
        x = x.copy()
        x[off] = (x[off] / norms[off, None]).astype(x.dtype)
    return x


class GalleryIndex:
    """A persistent gallery of detections (open with :meth:`open` or :meth:`create`)."""

    def __init__(self, path: str, manifest: Manifest, verify: bool = False):
        self.path = path
        self.manifest = manifest
        self.shards: List[Shard] = [
            open_shard(path, s, manifest.embedding_dim, manifest.dtype, verify)
            for s in manifest.shards
        ]
        self._store: Optional[RowStore] = None
        self._uids: Optional[np.ndarray] = None
        self._ann = None

    # ------------------------------------------------------------------ open / create
    @classmethod
    def create(cls, path: str, embedding_dim: int, model_config: str = '',
               checkpoint_sha256: str = '', dtype: str = 'float32',
               exist_ok: bool = False, **extra) -> 'GalleryIndex':
        """Create an empty index (or open the existing one when ``exist_ok`` and it
        was made with the same model and embedding size).

        Args:
            path (str): the index folder.
            embedding_dim (int): D.
            model_config (str): name of the config that embeds the gallery.
            checkpoint_sha256 (str): sha256 of its checkpoint.
            dtype (str): ``'float32'`` (exact float64 ranking of the inputs) or
                ``'float16'`` (half the disk and memory; ranks the rounded values).
            exist_ok (bool): resume an existing index instead of refusing.
            **extra: notes stored in the manifest (build arguments).
        """
        if osp.isfile(osp.join(path, 'manifest.json')):
            if not exist_ok:
                raise FileExistsError(f'a gallery index already exists at {path}')
            index = cls.open(path)
            index.check_model(model_config, checkpoint_sha256, embedding_dim)
            return index
        if dtype not in ('float32', 'float16'):
            raise ValueError(f'dtype must be float32 or float16, got {dtype!r}')
        os.makedirs(osp.join(path, SHARD_DIR), exist_ok=True)
        manifest = Manifest(embedding_dim=int(embedding_dim), model_config=model_config,
                            checkpoint_sha256=checkpoint_sha256, dtype=dtype,
                            extra=dict(extra))
        save_manifest(path, manifest)
        return cls(path, manifest)

    @classmethod
    def open(cls, path: str, verify: bool = False) -> 'GalleryIndex':
        """Open an index; ``verify`` also checks every file against its checksum."""
        return cls(path, load_manifest(path), verify=verify)

    def check_model(self, model_config: Optional[str] = None,
                    checkpoint_sha256: Optional[str] = None,
                    embedding_dim: Optional[int] = None) -> None:
        """Refuse embeddings from another model than the one that built the index.

        Raises:
            IndexMismatchError: the embedding size, the config name or the checkpoint
                hash differs from the manifest's (empty values are not compared).
        """
        m, where = self.manifest, osp.join(self.path, 'manifest.json')
        if embedding_dim is not None and int(embedding_dim) != m.embedding_dim:
            raise IndexMismatchError(f'{where}: the index holds {m.embedding_dim}-d '
                                     f'embeddings, got {embedding_dim}-d ones: they come '
                                     'from another model')
        if model_config and m.model_config and model_config != m.model_config:
            raise IndexMismatchError(f'{where}: the index was built with model config '
                                     f'{m.model_config!r}, not {model_config!r}')
        if checkpoint_sha256 and m.checkpoint_sha256 and \
                checkpoint_sha256 != m.checkpoint_sha256:
            raise IndexMismatchError(
                f'{where}: the index was built with checkpoint sha256 '
                f'{m.checkpoint_sha256[:12]}…, this checkpoint is {checkpoint_sha256[:12]}…: '
                'embeddings of different weights are not comparable')

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        return self.manifest.embedding_dim

    def __len__(self) -> int:
        return self.manifest.num_rows

    @property
    def threshold(self) -> Optional[float]:
        t = self.manifest.threshold
        return None if not t else float(t['similarity'])

    @property
    def store(self) -> RowStore:
        if self._store is None:
            self._store = RowStore([s.emb for s in self.shards])
        return self._store

    def sources(self) -> List[str]:
        """Distinct sources, in first-added order."""
        seen: Dict[str, None] = {}
        for s in self.shards:
            for name in s.sources[np.unique(s.meta['source'])] if s.rows else []:
                seen.setdefault(str(name), None)
        return list(seen)

    def covered(self) -> Dict[str, Set[int]]:
        """source → frames already indexed (with or without detections)."""
        out: Dict[str, Set[int]] = {}
        for s in self.manifest.shards:
            for src, start, stop, step in s.coverage:
                out.setdefault(src, set()).update(range(int(start), int(stop), int(step)))
        return out

    # ------------------------------------------------------------------ writing
    def _clean_orphans(self) -> None:
        """Remove shard files that the manifest does not list (a killed writer's)."""
        listed = {s.name for s in self.manifest.shards}
        folder = osp.join(self.path, SHARD_DIR)
        for fname in os.listdir(folder) if osp.isdir(folder) else []:
            if fname.split('.')[0] not in listed:
                os.remove(osp.join(folder, fname))

    def _next_shard_name(self) -> str:
        prefix = self.manifest.extra.get('shard_prefix', '')
        n = int(self.manifest.extra.get('next_shard', 0))
        self.manifest.extra['next_shard'] = n + 1
        return f'{prefix}{n:06d}'

    def _reset_caches(self) -> None:
        self._store, self._uids = None, None

    def add(self, embeddings: np.ndarray, sources: Union[str, Sequence[str]],
            frames: Optional[Sequence[int]] = None, times: Optional[Sequence[float]] = None,
            boxes: Optional[np.ndarray] = None, scores: Optional[Sequence[float]] = None,
            coverage: Optional[Iterable[Sequence]] = None, commit: bool = True) -> int:
        """Append detections as one new shard (committed atomically).

        Args:
            embeddings (np.ndarray): (N, D) embeddings (L2-normalised here if not yet).
            sources (str | Sequence[str]): the source of all or of each detection.
            frames, times: (N,) frame index and seconds (default 0).
            boxes (np.ndarray): (N, 4) xyxy boxes (default zeros).
            scores: (N,) detector scores (default 1).
            coverage (Iterable, optional): ``(source, start, stop, step)`` frame ranges
                this batch indexed, including frames without detections; a resumed
                build skips them (:meth:`covered`).
            commit (bool): save the manifest now; False lets several shards become
                visible together with the next committed ``add``.

        Returns:
            int: rows added.
        """
        emb = np.asarray(embeddings)
        if emb.ndim != 2:
            raise ValueError(f'embeddings must be (N, D), got shape {emb.shape}')
        n = len(emb)
        if n and emb.shape[1] != self.dim:
            raise IndexMismatchError(f'{osp.join(self.path, "manifest.json")}: the index '
                                     f'holds {self.dim}-d embeddings, got {emb.shape[1]}-d '
                                     'ones: they come from another model')
        emb = _normalise(emb.astype(np.float32, copy=False), 'embeddings') if n else \
            np.zeros((0, self.dim), np.float32)
        src_list = [sources] * n if isinstance(sources, str) else list(sources)
        if len(src_list) != n:
            raise ValueError(f'{len(src_list)} sources for {n} embeddings')
        table, inverse = np.unique(np.asarray(src_list, dtype=np.str_), return_inverse=True) \
            if n else (np.zeros(0, '<U1'), np.zeros(0, np.int64))
        meta = np.zeros(n, META_DTYPE)
        meta['uid'] = self.manifest.next_uid + np.arange(n)
        meta['source'] = inverse.reshape(-1)
        meta['frame'] = 0 if frames is None else np.asarray(frames, np.int64)
        meta['time'] = 0.0 if times is None else np.asarray(times, np.float64)
        if boxes is not None:
            meta['box'] = np.asarray(boxes, np.float32).reshape(n, 4)
        meta['score'] = 1.0 if scores is None else np.asarray(scores, np.float32)
        cov = [[str(c[0]), int(c[1]), int(c[2]), int(c[3]) if len(c) > 3 else 1]
               for c in (coverage or [])]
        if n == 0 and not cov:
            return 0
        self._clean_orphans()
        info = write_shard(self.path, self._next_shard_name(),
                           emb.astype(self.manifest.dtype), meta, table, cov)
        self.manifest.shards.append(info)
        self.manifest.next_uid += n
        if commit:
            save_manifest(self.path, self.manifest)
        self.shards.append(open_shard(self.path, info, self.dim, self.manifest.dtype))
        self._reset_caches()
        return n

    def remove(self, source: str) -> int:
        """Remove every detection of ``source`` (its shards are rewritten).

        Returns:
            int: rows removed.
        """
        self._clean_orphans()
        removed, new_infos, new_shards, gone, dropped_uids = 0, [], [], [], []
        for shard in self.shards:
            info = shard.info
            hit = np.nonzero(shard.sources == source)[0]
            cov = [c for c in info.coverage if c[0] != source]
            if len(hit) == 0 and len(cov) == len(info.coverage):
                new_infos.append(info)
                new_shards.append(shard)
                continue
            drop = np.isin(shard.meta['source'], hit) if len(hit) else \
                np.zeros(shard.rows, bool)
            removed += int(drop.sum())
            dropped_uids.append(np.asarray(shard.meta['uid'][drop]))
            gone.append(info.name)
            if (~drop).any() or cov:
                keep = ~drop
                meta = np.array(shard.meta[keep])
                old_src = shard.sources
                used = np.unique(meta['source'])
                remap = np.full(len(old_src), -1, np.int64)
                remap[used] = np.arange(len(used))
                meta['source'] = remap[meta['source']]
                new = write_shard(self.path, self._next_shard_name(),
                                  np.asarray(shard.emb[keep]), meta, old_src[used], cov)
                new_infos.append(new)
                new_shards.append(None)
        if not gone:
            return 0
        self.manifest.shards = new_infos
        if self.manifest.ann and dropped_uids:
            ann = self.approximate()
            ann.remove(np.concatenate(dropped_uids))
            ann.save(self.path)
        save_manifest(self.path, self.manifest)
        self.shards = [s if s is not None else open_shard(self.path, i, self.dim,
                                                          self.manifest.dtype)
                       for s, i in zip(new_shards, new_infos)]
        for name in gone:
            remove_shard_files(self.path, name)
        self._reset_caches()
        return removed

    def set_threshold(self, threshold: Optional[dict]) -> None:
        """Store a calibrated threshold (see :mod:`mmpsearch.retrieval.calibration`)."""
        if threshold is not None and 'similarity' not in threshold:
            raise ValueError('a threshold needs a "similarity" value')
        self.manifest.threshold = threshold
        save_manifest(self.path, self.manifest)

    # ------------------------------------------------------------------ approximate
    def build_approximate(self, factory: Optional[str] = None, nprobe: Optional[int] = None,
                          train_size: int = 200_000, seed: int = 0,
                          block_rows: int = 1 << 18) -> dict:
        """Train and fill a FAISS index over all detections (replaces any previous one).

        Args:
            factory (str, optional): FAISS index description (default
                :func:`approximate.default_factory`: IVF-PQ sized for the gallery).
            nprobe (int, optional): default lists visited per query (default: a quarter
                of the lists, at least 32: recall@10 about 0.95 on the clustered data of
                ``tools/analysis_tools/benchmark_index.py``; lower it for speed).
            train_size (int): rows sampled (evenly) for training.
            seed (int): k-means seed.
            block_rows (int): rows added per call.

        Returns:
            dict: the manifest's ``ann`` entry.
        """
        from .approximate import ApproximateIndex, default_factory
        n = len(self)
        if n == 0:
            raise GalleryIndexError(f'{self.path}: cannot build an approximate index of an '
                                    'empty gallery')
        factory = factory or default_factory(n, self.dim)
        sample_rows = np.unique(np.linspace(0, n - 1, min(n, train_size)).astype(np.int64))
        ann = ApproximateIndex.train(self.store.gather(sample_rows), factory, 32, seed)
        if nprobe is None:
            nlist = ann.nlist
            nprobe = max(32, nlist // 4) if nlist else 32
        ann.set_nprobe(nprobe)
        uids = self.uids()
        for start, block in self.store.iter_blocks(block_rows):
            ann.add(block, uids[start:start + len(block)])
        info = dict(file=ann.save(self.path), factory=factory, nprobe=int(nprobe),
                    max_uid=int(uids.max()), rows=int(ann.ntotal))
        self.manifest.ann = info
        save_manifest(self.path, self.manifest)
        self._ann = ann
        return info

    def approximate(self, nprobe: Optional[int] = None):
        from .approximate import ApproximateIndex
        if not self.manifest.ann:
            raise GalleryIndexError(f'{self.path} has no approximate index: build one '
                                    '(tools/index/build.py ... --ann) or search exactly')
        if self._ann is None:
            self._ann = ApproximateIndex.load(self.path, self.manifest.ann, self.dim)
        if nprobe is not None:
            self._ann.set_nprobe(nprobe)
        return self._ann

    # ------------------------------------------------------------------ reading
    def uids(self) -> np.ndarray:
        """(N,) uid of each row (increasing)."""
        if self._uids is None:
            parts = [np.asarray(s.meta['uid']) for s in self.shards]
            self._uids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return self._uids

    def _locate(self, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        offs = self.store.offsets
        shard = np.searchsorted(offs, rows, side='right') - 1
        return shard, rows - offs[shard]

    def records(self, rows: Sequence[int]) -> List[dict]:
        """Metadata of global ``rows``: source, frame, time, box, score, uid."""
        rows = np.asarray(rows, np.int64)
        out = []
        for s, r, g in zip(*self._locate(rows), rows):
            m = self.shards[s].meta[r]
            out.append(dict(source=str(self.shards[s].sources[m['source']]),
                            frame=int(m['frame']), time=float(m['time']),
                            box=[float(v) for v in m['box']], score=float(m['score']),
                            uid=int(m['uid']), row=int(g)))
        return out

    def frame_rows(self, row: int) -> np.ndarray:
        """Global rows of every detection in the frame of ``row`` (they are contiguous:
        a frame's detections are added together)."""
        (s,), (r,) = self._locate(np.asarray([row], np.int64))
        meta = self.shards[s].meta
        key = (meta[r]['source'], meta[r]['frame'])
        a, b = r, r + 1
        while a > 0 and (meta[a - 1]['source'], meta[a - 1]['frame']) == key:
            a -= 1
        while b < len(meta) and (meta[b]['source'], meta[b]['frame']) == key:
            b += 1
        return self.store.offsets[s] + np.arange(a, b)

    def embeddings(self, rows: Sequence[int]) -> np.ndarray:
        """(len(rows), D) float64 stored embeddings."""
        return self.store.gather(np.asarray(rows, np.int64))

    # ------------------------------------------------------------------ search
    def _check_queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.atleast_2d(np.asarray(queries, np.float64))
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise IndexMismatchError(
                f'{osp.join(self.path, "manifest.json")}: the index holds {self.dim}-d '
                f'embeddings, the query is {q.shape[-1]}-d: it was embedded by another '
                'model')
        return _normalise(q, 'query embedding')

    def search_rows(self, queries: np.ndarray, topk: int = 10, backend: str = 'exact',
                    shortlist: Optional[int] = None, nprobe: Optional[int] = None
                    ) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """Ranked global rows and float64 similarities per query (no threshold).

        Args:
            queries (np.ndarray): (Q, D) or (D,) query embeddings.
            topk (int): rows per query.
            backend (str): ``'exact'`` or ``'approximate'`` (FAISS shortlist of
                ``shortlist`` uids, default ``max(20 * topk, 200)``, re-scored exactly).
            shortlist (int, optional): approximate shortlist size.
            nprobe (int, optional): approximate lists visited per query.
        """
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        q = self._check_queries(queries)
        if backend == 'exact':
            return exact_search(self.store, q, topk)
        ann = self.approximate(nprobe)
        shortlist = int(shortlist or max(20 * topk, 200))
        uids = self.uids()
        found = ann.search(q, shortlist)
        cand = []
        tail = np.zeros(0, np.int64)
        max_uid = int(self.manifest.ann.get('max_uid', -1))
        if len(uids) and uids[-1] > max_uid:  # added after the FAISS index was built
            tail = np.arange(np.searchsorted(uids, max_uid, side='right'), len(uids))
        for row_ids in found:
            row_ids = row_ids[row_ids >= 0]
            pos = np.searchsorted(uids, row_ids)
            ok = pos < len(uids)
            pos, row_ids = pos[ok], row_ids[ok]
            pos = pos[uids[pos] == row_ids]  # uids removed since: gone
            cand.append(np.concatenate([pos, tail]))
        return rescore(self.store, q, cand, topk)

    def search(self, queries: np.ndarray, topk: int = 10, backend: str = 'exact',
               threshold: Union[str, float, None] = 'calibrated',
               shortlist: Optional[int] = None,
               nprobe: Optional[int] = None) -> List[QueryResult]:
        """Search each query; hits carry source, frame, time, box and similarity.

        Args:
            queries (np.ndarray): (Q, D) or (D,) query embeddings.
            topk (int): hits per query at most.
            backend (str): ``'exact'`` or ``'approximate'``.
            threshold (str | float | None): ``'calibrated'``: the index's calibrated
                threshold if it has one; a number: that one; None: no threshold.
                Hits below it are dropped; a query without any hit left is answered
                "not present" (``found=False``).
            shortlist, nprobe: approximate-backend settings (:meth:`search_rows`).

        Returns:
            list[QueryResult]: one per query.
        """
        thr = self.threshold if threshold == 'calibrated' else threshold
        rows, sims = self.search_rows(queries, topk, backend, shortlist, nprobe)
        out = []
        for r, s in zip(rows, sims):
            if thr is not None:
                keep = s >= float(thr)
                r, s = r[keep], s[keep]
            hits = [Hit(rank=i + 1, similarity=float(sim), **{k: v for k, v in rec.items()})
                    for i, (sim, rec) in enumerate(zip(s, self.records(r)))]
            out.append(QueryResult(hits, None if thr is None else float(thr),
                                   found=bool(hits) or thr is None))
        return out
