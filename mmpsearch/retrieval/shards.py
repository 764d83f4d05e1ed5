# Copyright (c) mmpsearch contributors. All rights reserved.
"""Shard files of a gallery index: ``.npy`` arrays memory-mapped on open.

A shard is three ``.npy`` files written once and never changed (removing a source
rewrites the shards that hold it under new names):

* ``<name>.emb.npy``: (N, D) embeddings, float32 or float16;
* ``<name>.meta.npy``: (N,) :data:`META_DTYPE` records (uid, source, frame, time, box,
  score); ``source`` indexes the shard's source table;
* ``<name>.src.npy``: (S,) unicode source names (file paths, video paths, image ids).

They are read with ``allow_pickle=False``: a damaged or hostile file is an error naming
the file, never code that runs.
"""
import hashlib
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np

from .manifest import IndexCorruptError, ShardInfo

META_DTYPE = np.dtype([('uid', '<i8'), ('source', '<i4'), ('frame', '<i8'), ('time', '<f8'),
                       ('box', '<f4', (4,)), ('score', '<f4')])
SUFFIXES = ('emb', 'meta', 'src')
SHARD_DIR = 'shards'


def shard_path(index_dir: str, name: str, suffix: str) -> str:
    return osp.join(index_dir, SHARD_DIR, f'{name}.{suffix}.npy')


def file_sha256(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def _save(path: str, array: np.ndarray) -> None:
    tmp = path + '.part'
    with open(tmp, 'wb') as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_shard(index_dir: str, name: str, embeddings: np.ndarray, meta: np.ndarray,
                sources: Sequence[str], coverage=None) -> ShardInfo:
    """Write one shard's files; the caller lists it in the manifest afterwards.

    Args:
        index_dir (str): the index folder.
        name (str): shard name (file stem).
        embeddings (np.ndarray): (N, D) float32/float16.
        meta (np.ndarray): (N,) :data:`META_DTYPE`.
        sources (Sequence[str]): the source table ``meta['source']`` indexes.
        coverage (list, optional): frame ranges the shard covers (``ShardInfo``).

    Returns:
        ShardInfo: name, rows and checksums.
    """
    os.makedirs(osp.join(index_dir, SHARD_DIR), exist_ok=True)
    src = np.asarray(list(sources), dtype=np.str_)
    if src.ndim != 1:
        src = src.reshape(-1)
    if len(src) == 0:
        src = np.zeros(0, dtype='<U1')
    arrays = dict(emb=np.ascontiguousarray(embeddings), meta=np.ascontiguousarray(meta),
                  src=src)
    sha = {}
    for suffix, arr in arrays.items():
        path = shard_path(index_dir, name, suffix)
        _save(path, arr)
        sha[suffix] = file_sha256(path)
    return ShardInfo(name, int(len(meta)), sha, list(coverage or []))


@dataclass
class Shard:
    """An opened shard (arrays memory-mapped read-only)."""
    info: ShardInfo
    emb: np.ndarray
    meta: np.ndarray
    sources: np.ndarray

    @property
    def rows(self) -> int:
        return self.info.rows


def _load(path: str, mmap: bool) -> np.ndarray:
    if not osp.isfile(path):
        raise IndexCorruptError(f'shard file {path} is missing (the manifest lists it)')
    try:
        return np.load(path, mmap_mode='r' if mmap else None, allow_pickle=False)
    except Exception as e:  # bad header, truncated data, object arrays
        raise IndexCorruptError(f'shard file {path} is damaged and cannot be read: '
                                f'{e}') from e


def open_shard(index_dir: str, info: ShardInfo, dim: int, dtype: str,
               verify: bool = False) -> Shard:
    """Memory-map a shard and check it against the manifest.

    Args:
        index_dir (str): the index folder.
        info (ShardInfo): the manifest's entry.
        dim (int): the index's embedding size.
        dtype (str): the index's storage type.
        verify (bool): also compare each file's sha256 with the manifest (reads them).

    Raises:
        IndexCorruptError: a file is missing, truncated, of another shape or type, its
            checksum differs (``verify``), or its source ids point outside its table.
    """
    paths: Dict[str, str] = {s: shard_path(index_dir, info.name, s) for s in SUFFIXES}
    if verify:
        for suffix, path in paths.items():
            want = info.sha256.get(suffix)
            if want and osp.isfile(path) and file_sha256(path) != want:
                raise IndexCorruptError(f'shard file {path} does not match its checksum in '
                                        'the manifest: it was changed or damaged')
    emb = _load(paths['emb'], mmap=True)
    meta = _load(paths['meta'], mmap=True)
    sources = _load(paths['src'], mmap=False)
    if emb.ndim != 2 or emb.shape != (info.rows, dim) or emb.dtype != np.dtype(dtype):
        raise IndexCorruptError(f'shard file {paths["emb"]} holds {emb.dtype} {emb.shape}, '
                                f'the manifest says {dtype} ({info.rows}, {dim})')
    if meta.dtype != META_DTYPE or meta.shape != (info.rows,):
        raise IndexCorruptError(f'shard file {paths["meta"]} holds {meta.dtype} '
                                f'{meta.shape}, expected {info.rows} detection records')
    if sources.ndim != 1 or sources.dtype.kind != 'U':
        raise IndexCorruptError(f'shard file {paths["src"]} is not a list of source names')
    if info.rows and (meta['source'].min() < 0 or meta['source'].max() >= len(sources)):
        raise IndexCorruptError(f'shard file {paths["meta"]} names sources outside '
                                f'{paths["src"]}')
    return Shard(info, emb, meta, sources)


def remove_shard_files(index_dir: str, name: str) -> None:
    for suffix in SUFFIXES:
        for path in (shard_path(index_dir, name, suffix),
                     shard_path(index_dir, name, suffix) + '.part'):
            if osp.exists(path):
                os.remove(path)
