# Copyright (c) mmpsearch contributors. All rights reserved.
"""The JSON manifest of a gallery index (docs/search_your_footage.md, "Index layout").

An index is a folder::

    INDEX/
      manifest.json           # this file: model, embedding size, shards, threshold
      shards/<name>.emb.npy   # (N, D) float32 | float16 L2-normalised embeddings
      shards/<name>.meta.npy  # (N,) structured array: uid, source, frame, time, box, score
      shards/<name>.src.npy   # (S,) unicode array: the shard's source names
      ann.faiss               # optional approximate (FAISS) index over the uids

Everything is read with ``allow_pickle=False`` (``.npy``) or as JSON, so opening an index
never runs code from it. The manifest is replaced atomically (write + ``os.replace``):
a build killed at any moment leaves the previous manifest, and shard files that it does
not list are ignored (and removed by the next writer).
"""
import datetime
import json
import os
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

FORMAT = 'mmpsearch.gallery_index'
VERSION = 1
MANIFEST = 'manifest.json'
DTYPES = ('float32', 'float16')


class GalleryIndexError(ValueError):
    """A gallery index cannot be used as asked (the message names the file)."""


class IndexCorruptError(GalleryIndexError):
    """A file of the index is damaged (truncated, wrong shape, checksum differs)."""


class IndexMismatchError(GalleryIndexError):
    """A query or a build comes from another model or embedding size than the index."""


@dataclass
class ShardInfo:
    """One shard of the index, as the manifest lists it.

    Attributes:
        name (str): file stem under ``shards/``.
        rows (int): number of detections.
        sha256 (dict): file suffix (``emb``/``meta``/``src``) → sha256 hex digest.
        coverage (list): ``[source, start, stop, step]`` frame ranges this shard indexed
            (frames with no detection included): what a resumed build skips.
    """
    name: str
    rows: int
    sha256: Dict[str, str] = field(default_factory=dict)
    coverage: List[list] = field(default_factory=list)


@dataclass
class Manifest:
    """Everything about an index but the arrays.

    Attributes:
        embedding_dim (int): D.
        model_config (str): name of the model config that embedded the gallery.
        checkpoint_sha256 (str): sha256 of its checkpoint file ('' when unknown).
        dtype (str): storage type of the embeddings (``float32`` or ``float16``).
        shards (list[ShardInfo]): shards in row order.
        next_uid (int): the uid the next detection gets (uids are never reused).
        threshold (dict, optional): calibrated similarity threshold (``similarity``,
            ``target_precision``, ``precision``, ``recall``, ``source``).
        ann (dict, optional): the approximate index (``file``, ``factory``,
            ``max_uid``: detections with a larger uid are searched exactly).
        extra (dict): free-form notes (build arguments, frame step...).
    """
    embedding_dim: int
    model_config: str = ''
    checkpoint_sha256: str = ''
    dtype: str = 'float32'
    shards: List[ShardInfo] = field(default_factory=list)
    next_uid: int = 0
    threshold: Optional[Dict[str, Any]] = None
    ann: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return sum(s.rows for s in self.shards)

    def to_json(self) -> Dict[str, Any]:
        from mmpsearch.version import __version__
        out = dict(format=FORMAT, version=VERSION, mmpsearch_version=__version__,
                   updated=datetime.datetime.now().isoformat(timespec='seconds'))
        out.update(asdict(self))
        return out


def _require(cond: bool, path: str, what: str) -> None:
    if not cond:
        raise IndexCorruptError(f'{path}: {what}; the manifest is damaged (rebuild the '
                                'index or restore the file)')


def load_manifest(index_dir: str) -> Manifest:
    """Read and validate ``INDEX/manifest.json``.

    Raises:
        FileNotFoundError: no index at ``index_dir``.
        IndexCorruptError: the file is not valid JSON (e.g. truncated) or misses fields.
        GalleryIndexError: another format or a newer version.
    """
    path = osp.join(index_dir, MANIFEST)
    if not osp.isfile(path):
        raise FileNotFoundError(f'no gallery index at {index_dir} ({MANIFEST} is missing); '
                                'build one with tools/index/build.py')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexCorruptError(f'{path} is not valid JSON ({e}); the manifest is '
                                'truncated or damaged: rebuild the index') from e
    _require(isinstance(data, dict), path, 'not a JSON object')
    if data.get('format') != FORMAT:
        raise GalleryIndexError(f'{path} is not a gallery-index manifest (format '
                                f'{data.get("format")!r})')
    if not isinstance(data.get('version'), int) or data['version'] > VERSION:
        raise GalleryIndexError(f'{path} has index version {data.get("version")}; this '
                                f'mmpsearch reads up to version {VERSION}: upgrade mmpsearch')
    dim = data.get('embedding_dim')
    _require(isinstance(dim, int) and dim > 0, path, f'bad embedding_dim {dim!r}')
    _require(data.get('dtype') in DTYPES, path, f'bad dtype {data.get("dtype")!r}')
    shards = data.get('shards')
    _require(isinstance(shards, list), path, 'no shard list')
    infos = []
    for s in shards:
        _require(isinstance(s, dict) and isinstance(s.get('name'), str)
                 and isinstance(s.get('rows'), int) and s['rows'] >= 0, path,
                 f'bad shard entry {s!r}')
        infos.append(ShardInfo(s['name'], s['rows'], dict(s.get('sha256') or {}),
                               list(s.get('coverage') or [])))
    names = [s.name for s in infos]
    _require(len(set(names)) == len(names), path, 'a shard is listed twice')
    return Manifest(embedding_dim=dim, model_config=str(data.get('model_config', '')),
                    checkpoint_sha256=str(data.get('checkpoint_sha256', '')),
                    dtype=data['dtype'], shards=infos, next_uid=int(data.get('next_uid', 0)),
                    threshold=data.get('threshold'), ann=data.get('ann'),
                    extra=dict(data.get('extra') or {}))


def save_manifest(index_dir: str, manifest: Manifest) -> None:
    """Write the manifest atomically (a reader sees the old or the new one, never half)."""
    path = osp.join(index_dir, MANIFEST)
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(manifest.to_json(), f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
