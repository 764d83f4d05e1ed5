# Copyright (c) mmpsearch contributors. All rights reserved.
"""The vectorised MAT-v5 reader behind :func:`read_protocol_mat` (see its module).

MAT-v5 layout used here: a top-level variable is a zlib-compressed (miCOMPRESSED) or
plain miMATRIX element; a miMATRIX holds [array flags][dims][name] then, for a struct, the
field-name length and names followed by one miMATRIX per (element, field) in column-major
order; a leaf holds one data element, in the "small" format (type and size in one word,
≤ 4 bytes of data) or the regular one. All elements are 8-byte aligned.

MATLAB's own encoding (raw_formats.md "Byte-level encoding", measured on the original
``TestG100.mat``) differs from scipy ``savemat``'s in two ways this reader handles: an
empty (unassigned) field is a **zero-byte miMATRIX** (the tag alone: no array flags, no
dimensions; ``loadmat`` shows it as a (1, 0) float64), and an integer-valued double is
class double whose data element is miUINT8/miUINT16 (often in the small format).
"""
import queue
import struct
import threading
import zlib
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ._mat import MatFormatError
from ._mat_protocol import GALLERY_FIELDS, QUERY_FIELDS, NameIndex, ProtocolTable

_U32 = struct.Struct('<I')
_TAG = struct.Struct('<II')
MI_INT8, MI_UINT8, MI_INT32, MI_UINT32 = 1, 2, 5, 6
MI_MATRIX, MI_COMPRESSED = 14, 15
MX_STRUCT, MX_CHAR = 2, 4
# MAT-v5 data types → numpy (little-endian files only; others use the scipy path)
_NUM_DTYPES = {1: '<i1', 2: '<u1', 3: '<i2', 4: '<u2', 5: '<i4', 6: '<u4', 7: '<f4',
               9: '<f8', 12: '<i8', 13: '<u8'}
_CHAR_WIDTH = {1: 1, 2: 1, 16: 1, 4: 2, 17: 2}  # bytes per (ASCII) character
_NUMERIC_CLASSES = set(range(6, 16))


class Unsupported(Exception):
    """The fast path does not handle this encoding; the caller uses scipy."""


class _Mx(NamedTuple):
    cls: int
    dims: Tuple[int, ...]
    name: str
    body: int
    end: int


def _elem(buf, p: int) -> Tuple[int, int, int, int]:
    """Data element at ``p`` → (type, nbytes, data offset, next offset)."""
    w, = _U32.unpack_from(buf, p)
    if w >> 16:  # small data element: type and size share the first word
        return w & 0xFFFF, w >> 16, p + 4, p + 8
    n, = _U32.unpack_from(buf, p + 4)
    return w, n, p + 8, p + 8 + ((n + 7) & ~7)


def _matrix(buf, off: int) -> _Mx:
    """Header of the miMATRIX element at ``off``."""
    typ, size = _TAG.unpack_from(buf, off)
    if typ != MI_MATRIX:
        raise Unsupported(f'element type {typ} at byte {off}')
    end = off + 8 + size
    if size == 0:  # MATLAB's bare empty matrix
        return _Mx(0, (0, 0), '', off + 8, end)
    t, n = _TAG.unpack_from(buf, off + 8)
    flags, = _U32.unpack_from(buf, off + 16)
    if t != MI_UINT32 or n != 8 or flags & 0x800:
        raise Unsupported('unexpected array flags')
    mdt, nb, d, p = _elem(buf, off + 24)
    if mdt != MI_INT32:
        raise Unsupported('unexpected dimensions element')
    dims = struct.unpack_from(f'<{nb // 4}i', buf, d)
    mdt, nb, d, p = _elem(buf, p)
    return _Mx(flags & 0xFF, dims, bytes(buf[d:d + nb]).decode('latin1'), p, end)


def _struct_fields(buf, mx: _Mx) -> Tuple[List[str], int]:
    if mx.cls != MX_STRUCT:
        raise Unsupported('expected a struct')
    _, _, d, p = _elem(buf, mx.body)
    width, = _U32.unpack_from(buf, d)
    _, nb, d, p = _elem(buf, p)
    raw = bytes(buf[d:d + nb])
    names = [raw[i:i + width].split(b'\0')[0].decode('latin1') for i in range(0, nb, width)]
    return names, p


def _leaf(buf, off: int, mx: Optional[_Mx] = None) -> Any:
    """A char (→ str) or numeric (→ ndarray, MATLAB dims) element."""
    mx = mx or _matrix(buf, off)
    if mx.end - off == 8:  # zero-byte element: loadmat gives a (1, 0) float64
        return np.zeros((1, 0))
    count = _numel(mx.dims)
    mdt, nb, d, _ = _elem(buf, mx.body)
    if mx.cls == MX_CHAR:
        width = _CHAR_WIDTH.get(mdt)
        if width is None:
            raise Unsupported(f'char data type {mdt}')
        raw = bytes(buf[d:d + nb])
        return raw.decode('utf-8' if width == 1 else 'utf-16-le')
    if mx.cls in _NUMERIC_CLASSES and mdt in _NUM_DTYPES:
        dt = np.dtype(_NUM_DTYPES[mdt])
        if nb != count * dt.itemsize:
            raise Unsupported('numeric size mismatch')
        # a copy: a view would pin the stream's window (bytearray) against resizing
        return np.frombuffer(buf, dt, count, d).reshape(mx.dims, order='F').copy()
    raise Unsupported(f'class {mx.cls} / data type {mdt}')


class _Stream:
    """A sliding window over one top-level variable's (decompressed) bytes.

    ``buf`` holds absolute stream bytes ``[base, base + len(buf))``; ``ensure`` appends
    inflated bytes, ``release`` drops bytes that are no longer needed, so memory stays at
    about one block of galleries instead of the whole variable (2.1 GB for TestG4000).
    Inflation runs in a background thread, in 16 MB steps fed from 1 MB input slices
    (zlib releases the GIL, so it overlaps the numpy decoding; one-shot inflation of
    TestG4000 is 2.7× slower because of output-buffer growth).
    """
    STEP = 16 << 20
    IN_STEP = 1 << 20

    def __init__(self, data: bytes, start: int, nbytes: int, compressed: bool, path: str):
        self.path = path
        self.base = 0  # stream offset of arr[lo]
        self._queue = None
        if not compressed:
            self.arr = np.frombuffer(data, np.uint8, nbytes, start)
            self.lo, self.hi = 0, nbytes
            return
        # arr[lo:hi] is the window; arr[0] always maps to an 8-aligned stream offset,
        # so element offsets inside the window stay 8-aligned.
        self.arr = np.empty(8 * self.STEP, np.uint8)
        self.lo = self.hi = 0
        self._queue = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._inflate, args=(memoryview(data)[start:start + nbytes], ),
            daemon=True)
        self._thread.start()

    @property
    def buf(self) -> np.ndarray:
        """The window, a uint8 array starting at stream offset ``base``."""
        return self.arr[self.lo:self.hi]

    def _inflate(self, src: memoryview) -> None:
        inflater = zlib.decompressobj()
        pos, pending = 0, b''
        try:
            while True:
                if not pending:
                    if pos >= len(src):
                        break
                    pending, pos = src[pos:pos + self.IN_STEP], pos + self.IN_STEP
                chunk = inflater.decompress(pending, self.STEP)
                pending = inflater.unconsumed_tail
                if chunk and not self._put(chunk):
                    return
                if inflater.eof:
                    break
            self._put(None)
        except zlib.error as e:
            self._put(MatFormatError(f'{self.path}: corrupt compressed data ({e})'))

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def ensure(self, end: int) -> None:
        while self.base + self.hi - self.lo < end:
            chunk = self._queue.get() if self._queue is not None else None
            if isinstance(chunk, Exception):
                self._queue = None
                raise chunk
            if chunk is None:
                self._queue = None
                raise MatFormatError(f'{self.path}: truncated MATLAB data')
            n, live = len(chunk), self.hi - self.lo
            if self.hi + n > self.arr.size:  # compact (the live part is usually small)
                shift = self.lo - self.lo % 8
                if live + n + 8 > self.arr.size:
                    grown = np.empty(2 * (live + n + 8), np.uint8)
                    grown[self.lo - shift:self.hi - shift] = self.arr[self.lo:self.hi]
                    self.arr = grown
                else:
                    self.arr[self.lo - shift:self.hi - shift] = self.arr[self.lo:self.hi].copy()
                self.lo, self.hi = self.lo - shift, self.hi - shift
            self.arr[self.hi:self.hi + n] = np.frombuffer(chunk, np.uint8)
            self.hi += n

    def release(self, upto: int) -> None:
        self.lo += upto - self.base
        self.base = upto

    def close(self) -> None:
        """Stop the inflating thread and free the window."""
        if self._queue is not None:
            self._stop.set()
            self._thread.join()
            self._queue = None
        self.arr = np.empty(0, np.uint8)
        self.lo = self.hi = 0


def _variables(path: str):
    """Yield (name, stream) for each top-level variable."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f'annotation file not found: {path}') from None
    if len(data) < 136:
        raise MatFormatError(f'{path}: too short for a MATLAB file ({len(data)} bytes)')
    if data[126:128] != b'IM':
        raise Unsupported('not a little-endian MAT-v5 file')
    pos = 128
    while pos + 8 <= len(data):
        typ, n = _TAG.unpack_from(data, pos)
        if typ == MI_COMPRESSED:
            stream = _Stream(data, pos + 8, n, True, path)
            pos += 8 + n
        elif typ == MI_MATRIX:
            stream = _Stream(data, pos, 8 + n, False, path)
            pos += 8 + ((n + 7) & ~7)
        else:
            raise Unsupported(f'top-level element type {typ}')
        stream.ensure(8)
        stream.ensure(min(_TAG.unpack_from(stream.buf, 0)[1] + 8, 4096))
        yield _matrix(stream.buf, 0).name, stream


def read_fast(path: str, var_names: Optional[Sequence[str]],
              name_index: NameIndex) -> ProtocolTable:
    """Read a TestG-style file with the vectorised decoder (raises :class:`Unsupported`
    for encodings it does not handle)."""
    found = []
    for name, stream in _variables(path):
        found.append(name)
        if (var_names is None and len(found) == 1) or (var_names and name in var_names):
            break
        stream.close()
    else:
        raise MatFormatError(f'{path}: none of the variables {list(var_names or [])} is '
                             f'present (found {found})')
    try:
        return _read_variable(path, stream, name_index)
    finally:
        stream.close()


def _read_variable(path: str, stream: '_Stream', name_index: NameIndex) -> ProtocolTable:
    top = _matrix(stream.buf, 0)
    fields, p = _struct_fields(stream.buf, top)
    for f in ('Query', 'Gallery'):
        if f not in fields:
            raise MatFormatError(f'{path}: the query list lacks the field {f} (has {fields})')
    nq = _numel(top.dims)
    q_names, q_boxes, q_hard, q_ids = [], [], [], []
    extra = {f: [] for f in fields if f not in ('Query', 'Gallery')}
    gal = _GalleryDecoder(nq, name_index, path)
    block = []  # (query, absolute start, absolute end) of galleries waiting in the window
    for qi in range(nq):
        for f in fields:
            stream.ensure(p + 8)
            end = p + 8 + _TAG.unpack_from(stream.buf, p - stream.base)[1]
            stream.ensure(end)
            buf, rel = stream.buf, p - stream.base
            child = _matrix(buf, rel)
            if f == 'Query':
                q = _parse_query(buf, child, path, qi)
                q_names.append(q[0])
                q_boxes.append(q[1])
                q_hard.append(q[2])
                q_ids.append(q[3])
            elif f == 'Gallery':
                gf, c = _struct_fields(buf, child)
                gal.layout(qi, _numel(child.dims), tuple(gf))
                block.append((qi, c + stream.base, end))
            else:
                extra[f].append(_leaf_or_none(buf, rel))
            del buf
            p = end
        if block and (qi == nq - 1 or p - block[0][1] > _Stream.STEP):
            gal.decode(stream, block)
            block = []
            stream.release(p)
    return ProtocolTable(path, top.name, q_names,
                         np.asarray(q_boxes, np.int64).reshape(-1, 4),
                         np.asarray(q_hard, np.int64), q_ids, *gal.result(), extra=extra)


def _parse_query(buf, child: _Mx, path: str, qi: int):
    qf, c = _struct_fields(buf, child)
    if _numel(child.dims) != 1 or set(QUERY_FIELDS) - set(qf):
        raise Unsupported('query struct layout')
    vals = {}
    for name in qf:
        leaf = _matrix(buf, c)
        vals[name] = _leaf(buf, c, leaf)
        c = leaf.end
    box = vals['idlocate']
    if np.size(box) != 4:
        raise MatFormatError(f'{path}: query {qi} box should be 4 numbers, got shape '
                             f'{np.shape(box)}')
    hard = int(np.asarray(vals['ishard']).reshape(-1)[0]) if np.size(vals['ishard']) else -1
    return (_as_str(vals['imname'], path, qi), np.asarray(box).reshape(-1).astype(np.int64),
            hard, _as_str(vals['idname'], path, qi))


def _numel(dims) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _as_str(value, path, qi) -> str:
    if not isinstance(value, str):
        raise MatFormatError(f'{path}: query {qi} name field is not a string')
    return value


def _leaf_or_none(buf, off):
    try:
        return _leaf(buf, off)
    except Unsupported:
        return None


_FLAGS_TAG = np.uint64(MI_UINT32 | 8 << 32)  # the array-flags tag: (miUINT32, 8 bytes)
_ZERO_BYTE_TAG = np.uint64(MI_MATRIX)  # an empty element: the tag (miMATRIX, 0 bytes)


def _element_offsets(words64, lo: np.ndarray, hi: np.ndarray, per_query: int) -> np.ndarray:
    """Byte offsets (Q, per_query) of the elements that tile each range [lo, hi).

    One linear scan finds every 8-aligned word that can start an element: a miMATRIX tag
    followed by an array-flags tag, or a zero-byte miMATRIX tag (MATLAB's empty field).
    Every real element start is found, but a look-alike inside data can be found too (a
    payload or flags word that equals a zero-byte tag); a range with exactly
    ``per_query`` candidates therefore holds exactly its elements, which the chain check
    (first at ``lo``, each element ends where the next begins, the last at ``hi``)
    confirms. A range with more candidates is walked element by element instead
    (:func:`_walk_chains`).
    """
    if lo.size == 0 or per_query == 0:
        return np.zeros((lo.size, per_query), np.int64)
    if np.any(lo % 8) or np.any(hi % 8):
        raise Unsupported('unaligned gallery')
    w0, w1 = int(lo.min()) // 8, int(hi.max()) // 8
    seg = words64[w0:w1]
    low = seg.view('<u4')[::2]  # the low half of each 64-bit word: the tag's type
    c = np.flatnonzero(low == MI_MATRIX)
    flagged = np.zeros(c.size, bool)
    inner = np.nonzero(c + 1 < seg.size)[0]  # a zero-byte element may end the range
    flagged[inner] = seg[c[inner] + 1] == _FLAGS_TAG
    c = c[(seg[c] == _ZERO_BYTE_TAG) | flagged]
    size = (seg[c] >> np.uint64(32)).astype(np.int64)
    off = (c + w0) * 8
    first = np.searchsorted(off, lo)
    exact = np.searchsorted(off, hi) - first == per_query
    out = np.empty((lo.size, per_query), np.int64)
    if np.any(exact):
        pick = first[exact, None] + np.arange(per_query)[None]
        o, nxt = off[pick], off[pick] + 8 + size[pick]
        if (np.any(o[:, 0] != lo[exact]) or np.any(nxt[:, :-1] != o[:, 1:])
                or np.any(nxt[:, -1] != hi[exact])):
            raise Unsupported('element chain check failed')
        out[exact] = o
    if not np.all(exact):
        out[~exact] = _walk_chains(words64, lo[~exact], hi[~exact], per_query)
    return out


def _walk_chains(words64, lo: np.ndarray, hi: np.ndarray, per_query: int) -> np.ndarray:
    """:func:`_element_offsets` by following each element's size, one element per step
    for all ranges at once (slower; only for ranges whose data hold look-alike tags)."""
    out = np.empty((lo.size, per_query), np.int64)
    cur = lo.copy()
    for k in range(per_query):
        if np.any(cur + 8 > hi):
            raise Unsupported('element chain check failed')
        out[:, k] = cur
        tag = words64[cur // 8]
        if np.any((tag & _LOW32) != MI_MATRIX):
            raise Unsupported('element chain check failed')
        cur = cur + 8 + (tag >> np.uint64(32)).astype(np.int64)
        if np.any(cur % 8):
            raise Unsupported('unaligned gallery entry')
    if np.any(cur != hi):
        raise Unsupported('element chain check failed')
    return out


class _GalleryDecoder:
    """Collects the gallery columns of all queries, one block of queries at a time."""

    def __init__(self, nq: int, name_index: NameIndex, path: str):
        self.nq, self.name_index, self.path = nq, name_index, path
        self.n_slots, self.fields = None, None
        self.gidx = None
        self.pos_q, self.pos_s, self.pos_b, self.pos_h, self.unknown = [], [], [], [], []

    def layout(self, qi: int, n_slots: int, fields: Tuple[str, ...]) -> None:
        if self.n_slots is None:
            missing = set(GALLERY_FIELDS) - set(fields)
            if missing:
                raise MatFormatError(f'{self.path}: gallery entries lack the field(s) '
                                     f'{sorted(missing)}')
            self.n_slots, self.fields = n_slots, fields
            self.gidx = np.empty((self.nq, n_slots), np.int64)
        elif n_slots != self.n_slots:
            raise MatFormatError(f'{self.path}: query {qi} has {n_slots} gallery entries, '
                                 f'query 0 has {self.n_slots}')
        elif fields != self.fields:
            raise Unsupported('gallery field order differs between queries')

    def decode(self, stream: _Stream, block: List[Tuple[int, int, int]]) -> None:
        qs = np.array([b[0] for b in block], np.int64)
        lo = np.array([b[1] for b in block], np.int64) - stream.base
        hi = np.array([b[2] for b in block], np.int64) - stream.base
        n_slots, nf = self.n_slots, len(self.fields)
        u8 = stream.buf
        words64 = u8[:u8.size // 8 * 8].view('<u8')
        off = _element_offsets(words64, lo, hi, n_slots * nf).reshape(qs.size, n_slots, nf)
        fi = {f: self.fields.index(f) for f in GALLERY_FIELDS}
        name_off = off[:, :, fi['imname']].ravel()
        if np.any(words64[name_off // 8] >> np.uint64(32) == 0):
            raise MatFormatError(f'{self.path}: a gallery image name is empty')
        name = _decode_entries(words64, name_off)
        box = _decode_present(words64, off[:, :, fi['idlocate']].ravel())
        hard = _decode_present(words64, off[:, :, fi['ishard']].ravel())
        if np.any(name['cls'] != MX_CHAR):
            raise MatFormatError(f'{self.path}: a gallery image name is not a string')
        keys = _name_keys(u8, words64, name)
        g = self.name_index.lookup_keys(keys)
        self.gidx[qs] = g.reshape(qs.size, n_slots)
        for k in np.nonzero(g < 0)[0][:max(0, 5 - len(self.unknown))]:
            self.unknown.append((int(qs[k // n_slots]), int(k % n_slots),
                                 keys[k].tobytes().rstrip(b'\0').decode('utf-8', 'replace')))
        count = box['count']
        if np.any((count != 0) & (count != 4)) or np.any(
                (count > 0) & ~np.isin(box['cls'], list(_NUMERIC_CLASSES))):
            raise MatFormatError(f'{self.path}: a gallery box is neither 4 numbers nor empty')
        sel = np.nonzero(count == 4)[0]
        if sel.size:
            self.pos_q.append(qs[sel // n_slots])
            self.pos_s.append(sel % n_slots)
            self.pos_b.append(_gather_numeric(u8, box['payload'][sel], box['mdt'][sel],
                                              box['nbytes'][sel], 4))
            h = np.full(sel.size, -1, np.int64)
            one = np.nonzero(hard['count'][sel] == 1)[0]
            if one.size:
                k = sel[one]
                h[one] = _gather_numeric(u8, hard['payload'][k], hard['mdt'][k],
                                         hard['nbytes'][k], 1)[:, 0]
            self.pos_h.append(h)

    def result(self):
        cat = (lambda xs, empty: np.concatenate(xs) if xs else empty)
        gidx = self.gidx if self.gidx is not None else np.zeros((self.nq, 0), np.int64)
        return (gidx, cat(self.pos_q, np.zeros(0, np.int64)),
                cat(self.pos_s, np.zeros(0, np.int64)),
                cat(self.pos_b, np.zeros((0, 4), np.int64)),
                cat(self.pos_h, np.zeros(0, np.int64)), self.unknown)


_HEAD_DIMS = np.uint64(MI_INT32 | 8 << 32)  # dims tag of a 2-D array
_HEAD_NAME = np.uint64(MI_INT8)  # the empty array name (tag (1, 0))
_LOW32 = np.uint64(0xFFFFFFFF)


def _decode_entries(words64, off: np.ndarray) -> Dict[str, np.ndarray]:
    """Class, element count, data type, byte count and payload offset of leaf elements.

    A leaf is [miMATRIX tag][flags tag][flags, nzmax][dims tag][d0, d1][empty name][data
    tag ...] in 64-bit words; the first two were checked by the element scan, words 2-6
    are gathered in one indexing operation.
    """
    if off.size and int(off.max()) // 8 + 7 > words64.size:
        raise Unsupported('truncated gallery entry')
    head = words64[(off // 8)[:, None] + np.arange(2, 7)[None]]
    if np.any(head[:, 1] != _HEAD_DIMS) or np.any(head[:, 3] != _HEAD_NAME):
        raise Unsupported('gallery entry is not an unnamed 2-D array')
    dw = head[:, 4] & _LOW32
    small = (dw >> np.uint64(16)) != 0  # small data element: type and size in one word
    return dict(cls=(head[:, 0] & np.uint64(0xFF)).astype(np.int64),
                count=((head[:, 2] & _LOW32) * (head[:, 2] >> np.uint64(32))).astype(np.int64),
                mdt=np.where(small, dw & np.uint64(0xFFFF), dw).astype(np.int64),
                nbytes=np.where(small, dw >> np.uint64(16),
                                head[:, 4] >> np.uint64(32)).astype(np.int64),
                payload=off + np.where(small, 52, 56))


def _decode_present(words64, off: np.ndarray) -> Dict[str, np.ndarray]:
    """:func:`_decode_entries` for fields that are mostly empty (gallery boxes, flags).

    An empty entry is either MATLAB's zero-byte element (its tag alone) or, as scipy
    writes it, a full header with a 0 dimension; only the tag word, and for non-zero-byte
    entries the dims tag and dims, are gathered for every entry; the entries that hold
    data (about 0.2% of a TestG4000 gallery) are then decoded in full.
    """
    count = np.zeros(off.size, np.int64)
    body = np.nonzero(words64[off // 8] >> np.uint64(32))[0]  # not a zero-byte element
    if body.size:
        o = off[body]
        if int(o.max()) // 8 + 7 > words64.size:
            raise Unsupported('truncated gallery entry')
        head = words64[(o // 8)[:, None] + np.arange(3, 5)[None]]
        if np.any(head[:, 0] != _HEAD_DIMS):
            raise Unsupported('gallery entry is not a 2-D array')
        count[body] = ((head[:, 1] & _LOW32) * (head[:, 1] >> np.uint64(32))).astype(np.int64)
    full = {k: np.zeros(off.size, np.int64) for k in ('cls', 'mdt', 'nbytes', 'payload')}
    full['count'] = count
    sel = np.nonzero(count > 0)[0]
    if sel.size:
        part = _decode_entries(words64, off[sel])
        for k, v in part.items():
            full[k][sel] = v
    return full


def _name_keys(u8, words64, entries: Dict[str, np.ndarray]) -> np.ndarray:
    """Names as NUL-padded 16-byte keys, (M, 2) uint64, for :meth:`NameIndex.lookup_keys`.

    The common cases (1-byte characters, 5..16 of them, or 2-byte characters, 3..16 of
    them: regular elements, payload 8-aligned) read two or four 64-bit words per name; the
    rest goes through byte gathers.
    """
    mdt, nbytes, count = entries['mdt'], entries['nbytes'], entries['count']
    width = np.zeros_like(mdt)
    for code, bpc in _CHAR_WIDTH.items():
        width[mdt == code] = bpc
    if np.any(width == 0) or np.any(nbytes != count * width):
        raise Unsupported('non-ASCII or unknown char encoding')
    keys = np.zeros((mdt.size, 2), np.uint64)
    fast = (width == 1) & (count > 4) & (count <= 16)
    idx = np.nonzero(fast)[0]
    if idx.size:
        w = words64[(entries['payload'][idx] // 8)[:, None] + np.arange(2)[None]]
        n = count[idx]
        shift0 = np.minimum(n, 8).astype(np.uint64) * np.uint64(8)
        mask0 = np.where(n >= 8, _ALL64, (np.uint64(1) << shift0) - np.uint64(1))
        shift1 = np.clip(n - 8, 0, 7).astype(np.uint64) * np.uint64(8)
        mask1 = np.where(n >= 16, _ALL64, (np.uint64(1) << shift1) - np.uint64(1))
        keys[idx, 0] = w[:, 0] & mask0
        keys[idx, 1] = np.where(n > 8, w[:, 1] & mask1, np.uint64(0))
    wide = (width == 2) & (count > 2) & (count <= 16)  # 2-byte characters (MATLAB)
    idx = np.nonzero(wide)[0]
    if idx.size:
        w = words64[(entries['payload'][idx] // 8)[:, None] + np.arange(4)[None]]
        chars = np.ascontiguousarray(w).view('<u2')  # (M, 16) characters
        inside = np.arange(16)[None] < count[idx, None]
        if np.any(chars[inside] > 127):
            raise Unsupported('non-ASCII image name')
        chars = np.where(inside, chars, 0).astype(np.uint8)
        keys[idx] = chars.view('<u8')
    rest = np.nonzero(~fast & ~wide)[0]
    if rest.size:
        if np.any(count[rest] > 16):
            raise Unsupported('image name longer than 16 characters')
        rows = _gather_chars(u8, entries['payload'][rest], mdt[rest], nbytes[rest],
                             count[rest])
        padded = np.zeros((rest.size, 16), np.uint8)
        padded[:, :rows.shape[1]] = rows
        keys[rest] = padded.view('<u8')
    return keys


_ALL64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _gather_chars(u8, payload, mdt, nbytes, nchar) -> np.ndarray:
    """NUL-padded ASCII bytes (M, L) uint8 of one char element per row."""
    width = np.zeros_like(mdt)
    for code, bpc in _CHAR_WIDTH.items():
        width[mdt == code] = bpc
    lmax = int(nchar.max()) if nchar.size else 0
    out = np.zeros((payload.size, max(lmax, 1)), np.uint8)
    for bpc in np.unique(width):
        sel = np.nonzero(width == bpc)[0]
        idx = payload[sel, None] + np.arange(lmax)[None] * bpc
        chars = u8[np.minimum(idx, u8.size - 1)]
        if bpc == 2 and np.any(u8[np.minimum(idx + 1, u8.size - 1)][
                np.arange(lmax)[None] < nchar[sel, None]]):
            raise Unsupported('non-ASCII UTF-16 name')
        chars[np.arange(lmax)[None] >= nchar[sel, None]] = 0
        out[sel, :lmax] = chars
    return out


def _gather_numeric(u8, payload, mdt, nbytes, count: int) -> np.ndarray:
    """``count`` numbers per row, decoded by each row's data type, as int64."""
    out = np.empty((payload.size, count), np.int64)
    for code in np.unique(mdt):
        if int(code) not in _NUM_DTYPES:
            raise Unsupported(f'numeric data type {code}')
        dt = np.dtype(_NUM_DTYPES[int(code)])
        sel = np.nonzero(mdt == code)[0]
        if np.any(nbytes[sel] != count * dt.itemsize):
            raise Unsupported('numeric size mismatch')
        raw = u8[payload[sel, None] + np.arange(count * dt.itemsize)[None]]
        out[sel] = np.ascontiguousarray(raw).view(dt).reshape(sel.size, count).astype(np.int64)
    return out
