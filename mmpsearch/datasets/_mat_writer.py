# Copyright (c) mmpsearch contributors. All rights reserved.
"""A MAT-v5 writer that encodes values the way MATLAB wrote the original CUHK-SYSU files.

scipy's ``savemat`` gives the same ``loadmat`` result but different bytes, so files it
writes never exercise the encodings of the originals. Measured on the original
``TestG100.mat`` (raw_formats.md "Byte-level encoding"), and reproduced here:

* the header text is ``MATLAB 5.0 MAT-file, Platform: MACI64, Created on: <date>``, and the
  variable is one ``miCOMPRESSED`` (zlib) element holding one ``miMATRIX``;
* an empty numeric array (an absent person's ``idlocate`` and ``ishard``) is a
  **zero-byte miMATRIX element**: the tag alone, no array flags, no dimensions, no name
  (``loadmat`` shows a (1, 0) float64);
* every number is class double (MATLAB has no other numeric type in these files); an
  integer-valued array is stored with the smallest integer data type that holds it:
  **miUINT8** when every value is in [0, 255], else **miUINT16** (boxes are chosen per box;
  ``loadmat`` returns uint8/uint16). Wider and negative ranges follow the same rule
  (miUINT32; miINT8/16/32), which the originals do not contain; anything else is miDOUBLE;
* chars are class char with **miUTF8** data;
* a data element of at most 4 bytes uses the small format (type and size in one word);
  struct field names are padded to the longest name + 1; elements are 8-byte aligned.

Values are given as ``loadmat`` returns them (see :mod:`._mat`): a structured ndarray is a
struct array, an object ndarray a cell array, ``str`` or a (1,) ``<U`` array a char row,
any other numeric ndarray a double array (:func:`._mat.mat_num` output included). The
byte builders (:func:`double_element` …) are public so that very large files can cache
the bytes of repeated leaves (``tools/analysis_tools/benchmark_cuhk_load.py``).
"""
import os
import struct
import time
import zlib
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

MI_INT8, MI_UINT8, MI_INT16, MI_UINT16, MI_INT32, MI_UINT32 = 1, 2, 3, 4, 5, 6
MI_DOUBLE, MI_MATRIX, MI_COMPRESSED, MI_UTF8 = 9, 14, 15, 16
MX_CELL, MX_STRUCT, MX_CHAR, MX_DOUBLE = 1, 2, 4, 6

#: MATLAB's empty field: a miMATRIX tag with 0 bytes and nothing after it
ZERO_BYTE_ELEMENT = struct.pack('<II', MI_MATRIX, 0)

# integer storage of a double array, in MATLAB's order of preference: (type, lo, hi, dtype)
_INT_STORAGE = ((MI_UINT8, 0, 255, '<u1'), (MI_INT8, -128, 127, '<i1'),
                (MI_UINT16, 0, 65535, '<u2'), (MI_INT16, -32768, 32767, '<i2'),
                (MI_UINT32, 0, 2**32 - 1, '<u4'), (MI_INT32, -2**31, 2**31 - 1, '<i4'))


def data_element(mdtype: int, payload: bytes) -> bytes:
    """A tagged data element; small format when the payload is ≤ 4 bytes."""
    n = len(payload)
    if 0 < n <= 4:
        return struct.pack('<I', (n << 16) | mdtype) + payload.ljust(4, b'\0')
    return struct.pack('<II', mdtype, n) + payload + b'\0' * (-n % 8)


def matrix_element(mclass: int, dims: Sequence[int], body: bytes, name: bytes = b'') -> bytes:
    """A miMATRIX element: array flags (class, no flag bits, nzmax 0), dims, name, body."""
    flags = struct.pack('<IIII', MI_UINT32, 8, mclass, 0)
    dims_el = data_element(MI_INT32, struct.pack(f'<{len(dims)}i', *dims))
    name_el = data_element(MI_INT8, name) if name else struct.pack('<II', MI_INT8, 0)
    content = flags + dims_el + name_el + body
    return struct.pack('<II', MI_MATRIX, len(content)) + content


def double_element(values: Any, name: bytes = b'') -> bytes:
    """A class-double array with MATLAB's storage type; empty → the zero-byte element.

    Args:
        values: numbers of any numeric dtype; 0-D/1-D input becomes a 1×N row.
        name (bytes): the variable name (top level only).
    """
    arr = np.asarray(values)
    if arr.dtype.kind not in 'uifb':
        raise TypeError(f'not a numeric array: {arr.dtype}')
    if arr.ndim < 2:
        arr = arr.reshape(1, -1)
    if arr.size == 0 and not name:
        return ZERO_BYTE_ELEMENT
    flat = arr.astype(np.float64).reshape(-1, order='F')
    mdtype, dtype = MI_DOUBLE, '<f8'
    if flat.size and np.all(np.isfinite(flat)) and np.all(flat == np.round(flat)):
        lo, hi = flat.min(), flat.max()
        for code, tlo, thi, dt in _INT_STORAGE:
            if tlo <= lo and hi <= thi:
                mdtype, dtype = code, dt
                break
    return matrix_element(MX_DOUBLE, arr.shape, data_element(mdtype, flat.astype(dtype).tobytes()),
                          name)


def char_element(text: str, name: bytes = b'') -> bytes:
    """A 1×n char row with UTF-8 data (n = number of characters)."""
    raw = text.encode('utf-8')
    return matrix_element(MX_CHAR, (1, len(text)), data_element(MI_UTF8, raw), name)


def struct_element(fields: Sequence[str], dims: Tuple[int, ...], children: Sequence[bytes],
                   name: bytes = b'') -> bytes:
    """A struct array; ``children``: element-major (column-major order), field-minor."""
    return b''.join(struct_parts(fields, dims, children, name))


def struct_parts(fields: Sequence[str], dims: Tuple[int, ...], children: Sequence[bytes],
                 name: bytes = b'') -> List[bytes]:
    """:func:`struct_element` as [header, *children], not joined (for a file of millions
    of entries, which :func:`write_matlab_file` then compresses piece by piece)."""
    numel = int(np.prod(dims))
    if len(children) != numel * len(fields):
        raise ValueError(f'{numel} elements x {len(fields)} fields need '
                         f'{numel * len(fields)} children, got {len(children)}')
    width = max(len(f) for f in fields) + 1
    body = data_element(MI_INT32, struct.pack('<i', width))
    body += data_element(MI_INT8, b''.join(f.encode('ascii').ljust(width, b'\0')
                                           for f in fields))
    head = matrix_element(MX_STRUCT, dims, body, name)
    size = len(head) - 8 + sum(len(c) for c in children)
    return [struct.pack('<II', MI_MATRIX, size) + head[8:], *children]


def cell_element(dims: Tuple[int, ...], children: Sequence[bytes], name: bytes = b'') -> bytes:
    """A cell array; ``children`` in column-major order."""
    return matrix_element(MX_CELL, dims, b''.join(children), name)


def encode(value: Any, name: bytes = b'') -> bytes:
    """The miMATRIX bytes of ``value`` (a ``loadmat``-style tree, see the module doc)."""
    if isinstance(value, str):
        return char_element(value, name)
    arr = np.asarray(value)
    dims = arr.shape if arr.ndim >= 2 else (1, arr.size)
    if arr.dtype.names is not None:
        kids = [encode(rec[f]) for rec in arr.reshape(-1, order='F') for f in arr.dtype.names]
        return struct_element(arr.dtype.names, dims, kids, name)
    if arr.dtype.kind == 'O':
        return cell_element(dims, [encode(v) for v in arr.reshape(-1, order='F')], name)
    if arr.dtype.kind == 'U':
        if arr.size != 1:
            raise TypeError(f'a char leaf must hold one string, got {arr.shape}')
        return char_element(str(arr.reshape(-1)[0]), name)
    return double_element(arr, name)


def header(created: Optional[str] = None) -> bytes:
    """The 128-byte header: MATLAB's text, no subsystem data, version 0x0100, 'IM'."""
    text = ('MATLAB 5.0 MAT-file, Platform: MACI64, Created on: '
            f'{created or time.asctime()}').encode('ascii')
    return text.ljust(116, b' ') + b'\0' * 8 + struct.pack('<H', 0x0100) + b'IM'


def write_matlab_file(path: str, element: Union[bytes, Sequence[bytes]],
                      created: Optional[str] = None) -> None:
    """Write one variable (its miMATRIX bytes, named; or those bytes in pieces, e.g. from
    :func:`struct_parts`) as one miCOMPRESSED element."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if isinstance(element, bytes):
        packed = [zlib.compress(element)]
    else:
        z = zlib.compressobj()
        packed = [z.compress(part) for part in element] + [z.flush()]
    with open(path, 'wb') as f:
        f.write(header(created))
        f.write(struct.pack('<II', MI_COMPRESSED, sum(len(p) for p in packed)))
        for p in packed:
            f.write(p)


def save_matlab(path: str, var_name: str, value: Any) -> None:
    """Write one variable encoded as MATLAB writes it (the CUHK-SYSU originals)."""
    write_matlab_file(path, encode(value, var_name.encode('ascii')))
