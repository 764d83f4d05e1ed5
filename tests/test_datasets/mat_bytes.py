# Copyright (c) mmpsearch contributors. All rights reserved.
"""A byte-level MAT-v5 writer for query/gallery files at full CUHK-SYSU scale.

``scipy.io.savemat`` needs ~16 s per 290k gallery entries, i.e. minutes for the 22 million
entries of TestG50…TestG4000. This writer caches the bytes of each distinct leaf, so a
full-scale file set is written in seconds, in one of three encodings:

* ``'scipy'``: the bytes ``savemat`` emits (checked byte for byte in
  ``test_mat_protocol.py``): uint8/uint16 classes, full headers for empty arrays;
* ``'matlab'``: the bytes MATLAB wrote into the original files
  (:mod:`mmpsearch.datasets._mat_writer`, checked byte for byte against the original
  ``TestG100.mat`` in ``test_mat_writer.py``): zero-byte empty elements, class double with
  uint8/uint16 data, UTF-8 chars, a MACI64 header;
* ``'utf16'``: as ``'matlab'`` but with 2-byte (miUINT16) characters, which MAT-v5 allows
  and the reader supports.

Test/benchmark helper only.
"""
import struct
import time
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmpsearch.datasets import _mat_writer as mw

_MX_CLASS = {np.dtype(np.uint8): (9, 2), np.dtype(np.uint16): (11, 4),
             np.dtype(np.float64): (6, 9)}


def _data_element(mdtype: int, payload: bytes) -> bytes:
    n = len(payload)
    if n <= 4:  # small data element format, as scipy writes it
        return struct.pack('<I', (n << 16) + mdtype) + payload.ljust(4, b'\0')
    return struct.pack('<II', mdtype, n) + payload + b'\0' * (-n % 8)


def _matrix(mclass: int, dims: Tuple[int, ...], body: bytes, name: bytes = b'') -> bytes:
    flags = struct.pack('<IIII', 6, 8, mclass, 0)
    dims_el = _data_element(5, struct.pack(f'<{len(dims)}i', *dims))
    name_el = (struct.pack('<II', 1, 0) if not name else _data_element(1, name))
    content = flags + dims_el + name_el + body
    return struct.pack('<II', 14, len(content)) + content


def char(s: str) -> bytes:
    """A 1×n char leaf."""
    raw = s.encode('utf-8')
    return _matrix(4, (1, len(raw)), _data_element(16, raw))


def num(values) -> bytes:
    """A numeric leaf with scipy's class for the array's dtype (uint8/uint16/float64)."""
    arr = np.asarray(values)
    if arr.ndim < 2:
        arr = arr.reshape(1, -1)
    mclass, mdtype = _MX_CLASS[arr.dtype]
    return _matrix(mclass, arr.shape, _data_element(mdtype, arr.tobytes(order='F')))


EMPTY = num(np.zeros((1, 0)))


def char16(s: str) -> bytes:
    """A char leaf stored as 2-byte characters (miUINT16)."""
    raw = s.encode('utf-16-le')
    return _matrix(4, (1, len(s)), _data_element(4, raw))


def struct_array(fields: Sequence[str], dims: Tuple[int, int], children: List[bytes],
                 name: bytes = b'') -> bytes:
    """A struct array; ``children`` are the element bytes, element-major, field-minor."""
    width = max(len(f) for f in fields) + 1
    body = _data_element(5, struct.pack('<i', width))
    body += _data_element(1, b''.join(f.encode().ljust(width, b'\0') for f in fields))
    return _matrix(2, dims, body + b''.join(children), name)


def cell_array(dims: Tuple[int, int], children: List[bytes], name: bytes = b'') -> bytes:
    """A cell array; ``children`` in MATLAB (column-major) order."""
    return _matrix(1, dims, b''.join(children), name)


def box_leaf(box) -> bytes:
    arr = np.asarray(box, dtype=np.float64).reshape(1, 4)
    return num(arr.astype(np.uint8) if arr.max() <= 255 else arr.astype(np.uint16))


ENCODINGS = ('scipy', 'matlab', 'utf16')


def query_gallery_file(path: str, var_name: str, queries: List[dict],
                       extra_field: Optional[str] = None, encoding: str = 'scipy',
                       compress: bool = True) -> None:
    """Write a TestG-style file.

    Args:
        path (str): output file.
        var_name (str): variable name (``TestG100``, ``Occlusion1``, ``Test_Size``).
        queries (list[dict]): each with ``imname``, ``box`` (xywh), ``hard``, ``idname``
            and ``gallery``: a list of (imname, box or None, hard).
        extra_field (str, optional): a third top-level field holding a 1×1 number 1.
        encoding (str): one of :data:`ENCODINGS` (see the module doc).
        compress (bool): zlib-compress the variable (v7) or not (v6).
    """
    if encoding not in ENCODINGS:
        raise ValueError(f'encoding must be one of {ENCODINGS}, got {encoding!r}')
    cache: Dict[str, bytes] = {}
    if encoding == 'scipy':
        mk_char, mk_box, empty, struct_el = char, box_leaf, EMPTY, struct_array
        hard_leaf = {0: num(np.array([[0]], np.uint8)), 1: num(np.array([[1]], np.uint8))}
    else:
        mk_char = char16 if encoding == 'utf16' else mw.char_element
        mk_box, empty, struct_el = mw.double_element, mw.ZERO_BYTE_ELEMENT, mw.struct_element
        hard_leaf = {0: mw.double_element([[0]]), 1: mw.double_element([[1]])}
    children = []
    qfields = ('imname', 'idlocate', 'ishard', 'idname')
    for q in queries:
        qs = struct_el(qfields, (1, 1), [mk_char(q['imname']), mk_box(q['box']),
                                         hard_leaf[q['hard']], mk_char(q['idname'])])
        parts = []
        for name, box, hard in q['gallery']:
            leaf = cache.get(name)
            if leaf is None:
                leaf = cache[name] = mk_char(name)
            parts.append(leaf)
            if box is None:
                parts.append(empty)
                parts.append(empty)
            else:
                parts.append(mk_box(box))
                parts.append(hard_leaf[hard])
        gs = struct_el(('imname', 'idlocate', 'ishard'), (1, len(q['gallery'])), parts)
        children.append(qs)
        children.append(gs)
        if extra_field:
            children.append(hard_leaf[1])
    fields = ('Query', 'Gallery') + ((extra_field, ) if extra_field else ())
    top = struct_el(fields, (1, len(queries)), children, name=var_name.encode())
    if encoding == 'scipy' or not compress:
        write_file(path, top, compress=compress)
    else:
        mw.write_matlab_file(path, top)


def header() -> bytes:
    text = ('MATLAB 5.0 MAT-file Platform: posix, Created on: '
            + time.asctime()).encode().ljust(116, b' ')
    return text + b'\0' * 8 + struct.pack('<H', 0x0100) + b'IM'


def write_file(path: str, matrix: bytes, compress: bool = True) -> None:
    with open(path, 'wb') as f:
        f.write(header())
        if compress:
            z = zlib.compress(matrix)
            f.write(struct.pack('<II', 15, len(z)) + z)
        else:
            f.write(matrix)
