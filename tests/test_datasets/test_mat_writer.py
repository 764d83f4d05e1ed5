# Copyright (c) mmpsearch contributors. All rights reserved.
"""The MATLAB-encoding writer: its rules, ``loadmat`` agreement with ``savemat``, and
byte identity with the original ``TestG100.mat`` (re-encoding loadmat's view of it)."""
import struct
import zlib

import numpy as np
import pytest
import scipy.io as sio

from mmpsearch.datasets import _mat_writer as mw
from mmpsearch.datasets._mat import cell_column, mat_empty, mat_num, save_mat, struct_row

from . import mat_walk
from .real_data import real_file


def _tree():
    """A value with every kind of leaf the CUHK-SYSU files hold, and a few more."""
    scene = struct_row(('imname', 'idlocate', 'ishard'), [
        ('s1.jpg', mat_num([10, 20, 30, 40]), mat_num([[0]])),
        ('s22.jpg', mat_num([300, 20, 30, 400]), mat_num([[1]])),
        ('s333.jpg', mat_empty(), mat_empty())])
    return struct_row(('idname', 'nAppear', 'scene', 'extra'), [
        ('p1', mat_num([[3]]), scene, cell_column(['a', 'bcdefghij'])),
        ('p12345', mat_num([[65535]]), struct_row(('imname', 'idlocate', 'ishard'), []),
         np.array([[0.5, -2.0]]))])


def _same(a, b, where='value'):
    """Deep equality of two loadmat results: types, dtypes, shapes and values."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for k in a:
            _same(a[k], b[k], f'{where}[{k}]')
        return
    assert (a.dtype, a.shape) == (b.dtype, b.shape), (where, a.dtype, a.shape, b.dtype,
                                                      b.shape)
    if a.dtype.names:
        for idx in np.ndindex(a.shape):
            for f in a.dtype.names:
                _same(a[idx][f], b[idx][f], f'{where}{list(idx)}.{f}')
    elif a.dtype.kind == 'O':
        for idx in np.ndindex(a.shape):
            _same(a[idx], b[idx], f'{where}{list(idx)}')
    else:
        assert np.array_equal(a, b), where


def test_loadmat_reads_what_savemat_would_give(tmp_path):
    ours, theirs = str(tmp_path / 'ours.mat'), str(tmp_path / 'theirs.mat')
    mw.save_matlab(ours, 'Person', _tree())
    save_mat(theirs, 'Person', _tree())
    a = {k: v for k, v in sio.loadmat(ours).items() if not k.startswith('__')}
    b = {k: v for k, v in sio.loadmat(theirs).items() if not k.startswith('__')}
    _same(a, b)
    # the difference MATLAB's encoding makes: every number is class double
    person = sio.loadmat(ours, mat_dtype=True)['Person']
    assert person[0, 0]['scene'][0, 1]['idlocate'].dtype == np.float64
    assert sio.loadmat(theirs, mat_dtype=True)['Person'][0, 0]['scene'][0, 1][
        'idlocate'].dtype == np.uint16


def test_encoding_rules(tmp_path):
    assert mw.encode(mat_empty()) == mw.ZERO_BYTE_ELEMENT == struct.pack('<II', 14, 0)
    assert mw.encode(np.zeros((0, 4))) == mw.ZERO_BYTE_ELEMENT

    def data_tag(element):  # the real part's tag, after the flags, dims and name
        return struct.unpack_from('<I', element, 48)[0]

    def storage(values):
        el = mw.double_element(values)
        assert struct.unpack_from('<I', el, 16)[0] == mw.MX_DOUBLE  # always class double
        w = data_tag(el)
        return w & 0xFFFF if w >> 16 else w

    assert storage([0, 255, 3, 4]) == mw.MI_UINT8  # four bytes: the small format
    assert data_tag(mw.double_element([0, 255, 3, 4])) == (4 << 16) | mw.MI_UINT8
    assert storage([0, 256, 3, 4]) == mw.MI_UINT16
    assert data_tag(mw.double_element([0, 256, 3, 4])) == mw.MI_UINT16  # 8 bytes: regular
    assert storage([[1]]) == mw.MI_UINT8
    assert storage([-1, 5]) == mw.MI_INT8
    assert storage([70000]) == mw.MI_UINT32
    assert storage([0.5]) == mw.MI_DOUBLE
    char = mw.char_element('s15538.jpg')
    assert struct.unpack_from('<I', char, 16)[0] == mw.MX_CHAR
    assert struct.unpack_from('<II', char, 48) == (mw.MI_UTF8, 10)
    assert struct.unpack_from('<I', mw.char_element('p12'), 48)[0] == (3 << 16) | mw.MI_UTF8
    path = str(tmp_path / 'x.mat')
    mw.save_matlab(path, 'TestG12', _tree())
    w = mat_walk.walk(path)
    assert w.header.startswith('MATLAB 5.0 MAT-file, Platform: MACI64, Created on: ')
    assert (w.version, w.endian, w.top_elements) == (0x0100, b'IM', (15, ))
    # a very large variable is written in pieces: the same bytes once inflated
    kids = [mw.char_element('s1.jpg'), mw.ZERO_BYTE_ELEMENT, mw.double_element([[1]])] * 3
    parts = mw.struct_parts(('imname', 'idlocate', 'ishard'), (1, 3), kids, b'G')
    mw.write_matlab_file(path, parts)
    with open(path, 'rb') as f:
        assert zlib.decompress(f.read()[136:]) == mw.struct_element(
            ('imname', 'idlocate', 'ishard'), (1, 3), kids, b'G')
    with pytest.raises(TypeError, match='numeric'):
        mw.double_element(np.array(['a']))


def test_reencoding_the_original_reproduces_its_bytes():
    """loadmat's view of the original TestG100.mat, encoded again, gives MATLAB's bytes:
    the file header and every record (first 300 queries: 30,000 gallery entries)."""
    path = real_file('cuhk_sysu', 'TestG100.mat')
    with open(path, 'rb') as f:
        raw = f.read()
    created = raw[:116].decode('ascii').rstrip().split('Created on: ')[1]
    assert mw.header(created) == raw[:128]
    typ, n = struct.unpack_from('<II', raw, 128)
    assert typ == mw.MI_COMPRESSED and 136 + n == len(raw)
    stream = zlib.decompress(raw[136:])
    var = sio.loadmat(path)['TestG100']
    head = mw.struct_element(('Query', 'Gallery'), (1, 1), [b'', b''], b'TestG100')
    # the same header but for the size word and the second dimension
    first = len(head)
    assert stream[8:first] == head[8:first].replace(struct.pack('<ii', 1, 1),
                                                     struct.pack('<ii', 1, 2900))
    p = first
    for rec in var[0, :300]:
        for field in ('Query', 'Gallery'):
            el = mw.encode(rec[field])
            assert stream[p:p + len(el)] == el, f'{field} of record at byte {p}'
            p += len(el)
