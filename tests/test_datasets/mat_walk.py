# Copyright (c) mmpsearch contributors. All rights reserved.
"""An independent MAT-v5 element walker for byte-level comparisons of ``.mat`` files.

It follows the MAT-file format description only (tags, small data elements, 8-byte
alignment, struct field names, cells) and records, for every leaf element, its field path,
MATLAB class and the data type of its real part, so two files can be compared by the
encodings they use (raw_formats.md "Byte-level encoding") rather than by what
``loadmat`` makes of them.
"""
import struct
import zlib
from collections import Counter
from typing import Dict, NamedTuple, Tuple

ZERO_BYTE = 'zero-byte'
_TAG = struct.Struct('<II')


class Walk(NamedTuple):
    header: str  # the 116-byte descriptive text, right-stripped
    version: int
    endian: bytes
    top_elements: Tuple[int, ...]  # data type of each top-level element (15: compressed)
    # (path, class, data type, 'small' | 'regular') → count; an empty element is
    # (path, ZERO_BYTE, None, None)
    leaves: Counter
    containers: Counter  # (path, 'struct' fields | 'cell') → count


def _element(buf: bytes, p: int):
    """Data element at ``p`` → (type, size, data offset, next offset)."""
    w, = struct.unpack_from('<I', buf, p)
    if w >> 16:
        return w & 0xFFFF, w >> 16, p + 4, p + 8, 'small'
    n, = struct.unpack_from('<I', buf, p + 4)
    return w, n, p + 8, p + 8 + ((n + 7) & ~7), 'regular'


def walk(path: str) -> Walk:
    """Walk every element of every top-level variable of a little-endian MAT-v5 file."""
    with open(path, 'rb') as f:
        raw = f.read()
    leaves, containers, tops = Counter(), Counter(), []

    def matrix(buf: bytes, off: int, where: str) -> int:
        typ, size = _TAG.unpack_from(buf, off)
        assert typ == 14, f'{path}: element type {typ} at {off} under {where}'
        end = off + 8 + size
        if size == 0:
            leaves[(where, ZERO_BYTE, None, None)] += 1
            return end
        flags, = struct.unpack_from('<I', buf, off + 16)
        cls = flags & 0xFF
        _, nb, d, p, _ = _element(buf, off + 24)
        dims = struct.unpack_from(f'<{nb // 4}i', buf, d)
        numel = 1
        for x in dims:
            numel *= x
        _, _, _, p, _ = _element(buf, p)  # array name
        if cls == 2:  # struct: field-name width, names, then element-major children
            _, _, d, p, _ = _element(buf, p)
            width, = struct.unpack_from('<i', buf, d)
            _, nb, d, p, _ = _element(buf, p)
            fields = tuple(buf[d + i:d + i + width].split(b'\0')[0].decode()
                           for i in range(0, nb, width))
            containers[(where, 'struct', fields)] += 1
            for _ in range(numel):
                for name in fields:
                    p = matrix(buf, p, f'{where}.{name}')
        elif cls == 1:
            containers[(where, 'cell')] += 1
            for _ in range(numel):
                p = matrix(buf, p, where + '{}')
        else:
            mdt, _, _, p, form = _element(buf, p)
            leaves[(where, cls, mdt, form)] += 1
        assert p == end, f'{path}: {where} ends at {p}, its tag says {end}'
        return end

    pos = 128
    while pos + 8 <= len(raw):
        typ, n = _TAG.unpack_from(raw, pos)
        tops.append(typ)
        if typ == 15:
            buf, start = zlib.decompress(raw[pos + 8:pos + 8 + n]), 0
        else:
            buf, start = raw, pos
        matrix(buf, start, '')
        pos += 8 + ((n + 7) & ~7 if typ != 15 else n)
    return Walk(raw[:116].rstrip(b' \0').decode('ascii', 'replace'),
                struct.unpack_from('<H', raw, 124)[0], raw[126:128], tuple(tops), leaves,
                containers)


def encodings(w: Walk) -> Dict[str, set]:
    """Field path (variable name removed) → the set of (class, data type, form) used."""
    out: Dict[str, set] = {}
    for (where, cls, mdt, form), _ in w.leaves.items():
        out.setdefault(where, set()).add((cls, mdt, form))
    return out
