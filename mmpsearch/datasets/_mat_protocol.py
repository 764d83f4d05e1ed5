# Copyright (c) mmpsearch contributors. All rights reserved.
"""Reader for CUHK-SYSU query/gallery files (``TestG*.mat``, ``Occlusion.mat``,
``Resolution.mat``), vectorised over queries.

Layout (raw_formats.md §2.2, confirmed on a real ``TestG100.mat``): a 1×Q struct with fields
(``Query``, ``Gallery`` [, ``occlusion``]); ``Query`` a 1×1 struct (``imname``,
``idlocate``, ``ishard``, ``idname``); ``Gallery`` a 1×N struct (``imname``, ``idlocate``,
``ishard``) whose ``idlocate``/``ishard`` are (1,0) when the person is absent.

Why not ``scipy.io.loadmat``: it builds three numpy objects per gallery entry; TestG4000 has
11.6 million entries (≈ 85 s and several GB of Python objects, measured at G100 scale). The
fast path decompresses the variable once and walks the MAT-v5 element stream itself: the
top level and the queries in Python (a few thousand elements), the gallery entries with
numpy, one step per (entry, field) for all queries at once. It reads the data type of
every element and both encodings of an absent person: MATLAB's (the original files,
raw_formats.md "Byte-level encoding": a zero-byte element for an empty field, class double
with uint8/uint16 data, UTF-8 chars) and scipy ``savemat``'s (a uint8/uint16 class, a full
header for an empty array); char data may also be UTF-16. The original ``TestG100.mat``
takes the fast path (tested against ``loadmat`` element for element); anything it does not
recognise falls back to ``loadmat`` (same output, tested on both paths). The fast path
lives in :mod:`._mat_stream`.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

from ._mat import (MatFormatError, get_var, load_mat, mat_box, mat_scalar, mat_str,
                   struct_items)

QUERY_FIELDS = ('imname', 'idlocate', 'ishard', 'idname')
GALLERY_FIELDS = ('imname', 'idlocate', 'ishard')


class NameIndex:
    """Exact, vectorised lookup of image names → positions in a list.

    Names of at most 16 bytes (all CUHK-SYSU names) go through an open-addressing hash
    table over their two 64-bit words, verified by comparing both words, so millions of
    gallery names map in one pass; longer names use a sorted-array search.

    Args:
        names (Sequence[str]): the image names (must be unique).
    """
    _MIX = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self, names: Sequence[str]):
        enc = [n.encode('utf-8') for n in names]
        width = max([16] + [len(e) for e in enc])
        arr = np.array(enc, dtype=f'S{width}')
        self.order = np.argsort(arr, kind='stable')
        self.sorted = arr[self.order]
        dup = np.nonzero(self.sorted[1:] == self.sorted[:-1])[0]
        if dup.size:
            raise ValueError(f'duplicate image name {self.sorted[dup[0]].decode()!r}')
        self.hashed = width == 16
        if self.hashed:
            self.words = arr.view('<u8').reshape(-1, 2)
            h = self._hash(self.words)
            self.mask = (1 << max(4, int(4 * max(1, len(enc)) - 1).bit_length())) - 1
            self.slots = np.full(self.mask + 1, -1, np.int64)
            self.max_probe = 0
            for i, hv in enumerate((h & np.uint64(self.mask)).tolist()):
                j, probe = hv, 0
                while self.slots[j] >= 0:
                    j, probe = (j + 1) & self.mask, probe + 1
                self.slots[j] = i
                self.max_probe = max(self.max_probe, probe)

    def _hash(self, words: np.ndarray) -> np.ndarray:
        with np.errstate(over='ignore'):
            h = words[:, 0] * self._MIX ^ words[:, 1]
            return h ^ (h >> np.uint64(29)) * self._MIX

    def lookup_keys(self, words: np.ndarray) -> np.ndarray:
        """Positions of names given as NUL-padded 16-byte keys (M, 2) uint64; -1 if unknown.
        """
        if not self.hashed:
            return self.lookup(np.ascontiguousarray(words).view('S16')[:, 0])
        slot = (self._hash(words) & np.uint64(self.mask)).astype(np.int64)
        out = np.full(words.shape[0], -1, np.int64)
        pending = np.arange(words.shape[0])
        for _ in range(self.max_probe + 1):
            cand = self.slots[slot[pending]]
            known = cand >= 0
            hit = known.copy()
            hit[known] = np.all(self.words[cand[known]] == words[pending[known]], axis=1)
            out[pending[hit]] = cand[hit]
            pending = pending[known & ~hit]
            if not pending.size:
                break
            slot[pending] = (slot[pending] + 1) & self.mask
        return out

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Positions of byte-string ``keys`` (an ``S`` array); -1 where unknown."""
        keys = np.asarray(keys)
        table = self.sorted
        if keys.dtype.itemsize > table.dtype.itemsize:
            table = table.astype(keys.dtype)  # widening pads with NUL: still exact
        else:
            keys = keys.astype(table.dtype)
        if table.size == 0:
            return np.full(keys.shape, -1, dtype=np.int64)
        pos = np.clip(np.searchsorted(table, keys), 0, table.size - 1)
        return np.where(table[pos] == keys, self.order[pos], -1).astype(np.int64)

    def __call__(self, names: Sequence[str]) -> np.ndarray:
        """Positions of ``str`` names; -1 where unknown."""
        enc = [n.encode('utf-8') for n in names]
        return self.lookup(np.array(enc, dtype=f'S{max([1] + [len(e) for e in enc])}'))


@dataclass
class ProtocolTable:
    """One query/gallery file, decoded. Boxes are int64 ``[x, y, w, h]`` as stored.

    ``gallery_image_idx[q, s]`` is the position (from the caller's :class:`NameIndex`) of
    slot ``s`` of query ``q``, -1 for an unknown name; slots with a box are listed in
    ``pos_query``/``pos_slot``/``pos_boxes`` (any position, not only the leading ones).
    """
    path: str
    var_name: str
    query_names: List[str]
    query_boxes: np.ndarray
    query_hard: np.ndarray
    query_idnames: List[str]
    gallery_image_idx: np.ndarray
    pos_query: np.ndarray
    pos_slot: np.ndarray
    pos_boxes: np.ndarray
    pos_hard: np.ndarray
    unknown_names: List[Tuple[int, int, str]] = field(default_factory=list)
    extra: Dict[str, List[Any]] = field(default_factory=dict)
    reader: str = 'fast'


def read_protocol_mat(path: str, var_names: Optional[Sequence[str]],
                      name_index: NameIndex, fast: bool = True) -> ProtocolTable:
    """Read a TestG/Occlusion/Resolution file.

    Args:
        path (str): the ``.mat`` file.
        var_names (Sequence[str], optional): accepted variable names (``None``: the only
            variable of the file).
        name_index (NameIndex): maps gallery image names to test-image positions.
        fast (bool): try the vectorised reader first (falls back to scipy).

    Returns:
        ProtocolTable: the decoded file.
    """
    if fast:
        from ._mat_stream import Unsupported, read_fast
        try:
            return read_fast(path, var_names, name_index)
        except Unsupported as e:
            print_log(f'{path}: vectorised reader not applicable ({e}); using scipy.io',
                      logger='current')
    return _read_scipy(path, var_names, name_index)


# --------------------------------------------------------------------------- scipy path
def _read_scipy(path, var_names, name_index) -> ProtocolTable:
    arr = get_var(load_mat(path), path, var_names)
    name = var_names[0] if var_names else ''
    recs = struct_items(arr, path, ('Query', 'Gallery'), 'the query list')
    extra_fields = [f for f in arr.dtype.names if f not in ('Query', 'Gallery')]
    q_names, q_boxes, q_hard, q_ids, gal_names = [], [], [], [], []
    pos_q, pos_s, pos_b, pos_h = [], [], [], []
    extra = {f: [] for f in extra_fields}
    n_slots = None
    for qi, rec in enumerate(recs):
        what = f'query {qi}'
        qrecs = struct_items(rec['Query'], path, QUERY_FIELDS, f'{what} Query')
        if len(qrecs) != 1:
            raise MatFormatError(f'{path}: {what} Query should be 1x1, has {len(qrecs)} '
                                 'records')
        qrec = qrecs[0]
        q_names.append(mat_str(qrec['imname'], path, f'{what} imname'))
        box = mat_box(qrec['idlocate'], path, f'{what} idlocate')
        if box is None:
            raise MatFormatError(f'{path}: {what} has an empty query box')
        q_boxes.append(box)
        q_hard.append(mat_scalar(qrec['ishard'], path, f'{what} ishard'))
        q_ids.append(mat_str(qrec['idname'], path, f'{what} idname'))
        grecs = struct_items(rec['Gallery'], path, GALLERY_FIELDS, f'{what} Gallery')
        if n_slots is None:
            n_slots = len(grecs)
        elif len(grecs) != n_slots:
            raise MatFormatError(f'{path}: {what} has {len(grecs)} gallery entries, '
                                 f'query 0 has {n_slots}')
        for s, g in enumerate(grecs):
            gal_names.append(mat_str(g['imname'], path, f'{what} gallery {s} imname'))
            gbox = mat_box(g['idlocate'], path, f'{what} gallery {s} idlocate')
            if gbox is not None:
                pos_q.append(qi)
                pos_s.append(s)
                pos_b.append(gbox)
                pos_h.append(mat_scalar(g['ishard'], path, f'{what} gallery {s} ishard'))
        for f in extra_fields:
            extra[f].append(rec[f])
    nq, n_slots = len(recs), n_slots or 0
    gidx = name_index(gal_names).reshape(nq, n_slots)
    unknown = [(int(q), int(s), gal_names[q * n_slots + s])
               for q, s in zip(*np.nonzero(gidx < 0))][:5]
    return ProtocolTable(
        path, name, q_names, np.asarray(q_boxes, np.int64).reshape(-1, 4),
        np.asarray(q_hard, np.int64), q_ids, gidx, np.asarray(pos_q, np.int64),
        np.asarray(pos_s, np.int64), np.asarray(pos_b, np.int64).reshape(-1, 4),
        np.asarray(pos_h, np.int64), unknown, extra, reader='scipy')
