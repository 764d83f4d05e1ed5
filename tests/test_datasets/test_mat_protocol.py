# Copyright (c) mmpsearch contributors. All rights reserved.
"""The vectorised TestG reader against scipy's ``loadmat`` on scipy-written, raw-byte and
MATLAB-encoded files (as the originals: zero-byte empty elements, class double with
uint8/uint16 data); the byte writer against ``savemat``; errors on bad files."""
import os.path as osp
import zlib

import numpy as np
import pytest
import scipy.io as sio

from mmpsearch.datasets._mat import (MatFormatError, mat_empty, mat_num, save_mat,
                                     struct_row)
from mmpsearch.datasets._mat_protocol import NameIndex, read_protocol_mat
from mmpsearch.datasets._mat_stream import read_fast

from . import mat_bytes


def _queries(rng, pool, n_queries=7, n_slots=12, own_image_quirk=True):
    out = []
    for q in range(n_queries):
        idx = rng.choice(len(pool), n_slots + 1, replace=False)
        npos = int(rng.integers(1, 4))
        gal = [(pool[i], [int(rng.integers(0, 300)), int(rng.integers(0, 300)),
                          int(rng.integers(5, 300)), int(rng.integers(5, 400))],
                int(rng.integers(0, 2))) for i in idx[1:1 + npos]]
        gal += [(pool[i], None, 0) for i in idx[1 + npos:]]
        if own_image_quirk and q == 0:  # the query's own image, and a duplicated slot
            gal[-1] = (pool[idx[0]], [5, 6, 7, 8], 0)
            gal[-2] = gal[npos]
        out.append(dict(imname=pool[idx[0]], box=[10, 20, 30, 260 + q], hard=q % 2,
                        idname=f'p{100 + q}', gallery=gal))
    return out


def _savemat_version(path, var, queries, extra=None):
    rows = []
    for q in queries:
        qs = struct_row(('imname', 'idlocate', 'ishard', 'idname'),
                        [(q['imname'], mat_num(q['box']), mat_num([[q['hard']]]), q['idname'])])
        gs = struct_row(('imname', 'idlocate', 'ishard'), [
            (n, mat_num(b) if b is not None else mat_empty(),
             mat_num([[h]]) if b is not None else mat_empty()) for n, b, h in q['gallery']])
        rows.append((qs, gs, mat_num([[1]])) if extra else (qs, gs))
    fields = ('Query', 'Gallery') + ((extra, ) if extra else ())
    save_mat(path, var, struct_row(fields, rows))


def _expected(queries, pool):
    """Independent expectation straight from the query dicts."""
    index = {n: i for i, n in enumerate(pool)}
    gidx = np.array([[index[n] for n, _, _ in q['gallery']] for q in queries])
    pos = [(qi, s, b, h) for qi, q in enumerate(queries)
           for s, (n, b, h) in enumerate(q['gallery']) if b is not None]
    return gidx, pos


def _check(table, queries, pool):
    gidx, pos = _expected(queries, pool)
    assert np.array_equal(table.gallery_image_idx, gidx)
    assert table.pos_query.tolist() == [p[0] for p in pos]
    assert table.pos_slot.tolist() == [p[1] for p in pos]
    assert table.pos_boxes.tolist() == [p[2] for p in pos]
    assert table.pos_hard.tolist() == [p[3] for p in pos]
    assert table.query_names == [q['imname'] for q in queries]
    assert table.query_boxes.tolist() == [q['box'] for q in queries]
    assert table.query_idnames == [q['idname'] for q in queries]
    assert table.query_hard.tolist() == [q['hard'] for q in queries]


@pytest.fixture
def pool():
    rng = np.random.default_rng(0)
    return [f's{k}.jpg' for k in rng.choice(np.arange(1, 5000), 60, replace=False)]


def test_byte_writer_matches_savemat(tmp_path, pool):
    queries = _queries(np.random.default_rng(1), pool)
    a, b = str(tmp_path / 'a.mat'), str(tmp_path / 'b.mat')
    mat_bytes.query_gallery_file(a, 'TestG12', queries)
    _savemat_version(b, 'TestG12', queries)
    ra, rb = open(a, 'rb').read(), open(b, 'rb').read()
    assert zlib.decompress(ra[136:]) == zlib.decompress(rb[136:])


@pytest.mark.parametrize('writer', ['savemat', 'bytes', 'bytes_uncompressed', 'matlab',
                                    'matlab_uncompressed', 'utf16'])
def test_fast_reader_equals_scipy(tmp_path, pool, writer):
    queries = _queries(np.random.default_rng(2), pool)
    path = str(tmp_path / 'TestG12.mat')
    if writer == 'savemat':
        _savemat_version(path, 'TestG12', queries)
    else:
        mat_bytes.query_gallery_file(
            path, 'TestG12', queries,
            encoding={'bytes': 'scipy', 'bytes_uncompressed': 'scipy'}.get(
                writer, writer.split('_')[0]),
            compress=not writer.endswith('_uncompressed'))
    index = NameIndex(pool)
    fast = read_fast(path, ['TestG12'], index)  # raises Unsupported instead of falling back
    slow = read_protocol_mat(path, ['TestG12'], index, fast=False)
    assert slow.reader == 'scipy'
    _check(fast, queries, pool)
    _check(slow, queries, pool)


def test_matlab_style_file_has_the_real_loadmat_signature(tmp_path, pool):
    """MATLAB stores an integer-valued double with uint8/uint16 storage and loadmat returns
    that storage type; the empty box is (1, 0) float64 (raw_formats.md §0, §2.2)."""
    queries = _queries(np.random.default_rng(3), pool, own_image_quirk=False)
    path = str(tmp_path / 'TestG12.mat')
    mat_bytes.query_gallery_file(path, 'TestG12', queries, encoding='matlab')
    var = sio.loadmat(path)['TestG12']
    assert var.shape == (1, len(queries)) and var.dtype.names == ('Query', 'Gallery')
    q = var[0, 0]['Query']
    assert q.shape == (1, 1) and q[0, 0]['idlocate'].dtype == np.uint16
    g = var[0, 0]['Gallery'][0]
    dtypes = {(e['idlocate'].dtype, e['idlocate'].shape) for e in g}
    assert (np.dtype(np.float64), (1, 0)) in dtypes
    assert g[-1]['ishard'].shape == (1, 0) and g[0]['imname'].shape == (1, )


def test_subset_with_third_field(tmp_path, pool):
    queries = _queries(np.random.default_rng(4), pool)
    path = str(tmp_path / 'Occlusion.mat')
    _savemat_version(path, 'Occlusion1', queries, extra='occlusion')
    table = read_protocol_mat(path, ['Occlusion1'], NameIndex(pool))
    _check(table, queries, pool)
    assert [int(np.asarray(v).reshape(-1)[0]) for v in table.extra['occlusion']] == \
        [1] * len(queries)


def test_unknown_gallery_name_is_reported(tmp_path, pool):
    queries = _queries(np.random.default_rng(5), pool)
    queries[2]['gallery'][4] = ('s99999.jpg', None, 0)
    path = str(tmp_path / 'TestG12.mat')
    _savemat_version(path, 'TestG12', queries)
    for fast in (True, False):
        table = read_protocol_mat(path, ['TestG12'], NameIndex(pool), fast=fast)
        assert table.gallery_image_idx[2, 4] == -1
        assert table.unknown_names[0] == (2, 4, 's99999.jpg')


def test_bad_files(tmp_path, pool):
    index = NameIndex(pool)
    garbage = str(tmp_path / 'garbage.mat')
    with open(garbage, 'wb') as f:
        f.write(b'not a mat file' * 20)
    with pytest.raises(MatFormatError, match='garbage.mat'):
        read_protocol_mat(garbage, ['TestG12'], index)
    queries = _queries(np.random.default_rng(6), pool)
    good = str(tmp_path / 'TestG12.mat')
    mat_bytes.query_gallery_file(good, 'TestG12', queries)
    truncated = str(tmp_path / 'truncated.mat')
    with open(good, 'rb') as f, open(truncated, 'wb') as g:
        g.write(f.read()[:-40])
    with pytest.raises(MatFormatError, match='truncated.mat'):
        read_protocol_mat(truncated, ['TestG12'], index)
    with pytest.raises(MatFormatError, match="TestG50"):
        read_protocol_mat(good, ['TestG50'], index)
    ragged = str(tmp_path / 'ragged.mat')
    queries[3]['gallery'] = queries[3]['gallery'][:-1]
    _savemat_version(ragged, 'TestG12', queries)
    for fast in (True, False):
        with pytest.raises(MatFormatError, match='gallery entries'):
            read_protocol_mat(ragged, ['TestG12'], index, fast=fast)
    with pytest.raises(FileNotFoundError, match='missing.mat'):
        read_protocol_mat(osp.join(str(tmp_path), 'missing.mat'), None, index)


def test_name_index():
    rng = np.random.default_rng(7)
    names = [f's{k}.jpg' for k in rng.choice(10**6, 3000, replace=False)]
    index = NameIndex(names)
    probe = names[::7] + ['nope.jpg', 's1.jpgx']
    expect = [names.index(n) if n in names else -1 for n in probe]
    assert index(probe).tolist() == expect
    long_names = [f'{"x" * 20}_{k}.jpg' for k in range(50)]  # longer than 16 bytes
    assert NameIndex(long_names)(long_names[::-1]).tolist() == list(range(49, -1, -1))
    with pytest.raises(ValueError, match='duplicate'):
        NameIndex(['a.jpg', 'b.jpg', 'a.jpg'])


def test_look_alike_tags_inside_entries(tmp_path, pool):
    """An int64 array's flags word reads like a zero-byte element's tag (both are the
    64-bit value 14); the reader walks such galleries element by element instead."""
    queries = _queries(np.random.default_rng(8), pool)
    rows = []
    for q in queries:
        qs = struct_row(('imname', 'idlocate', 'ishard', 'idname'),
                        [(q['imname'], mat_num(q['box']), mat_num([[q['hard']]]), q['idname'])])
        gs = struct_row(('imname', 'idlocate', 'ishard'), [
            (n, mat_num(b) if b is not None else mat_empty(),
             np.array([[h]], np.int64) if b is not None else mat_empty())
            for n, b, h in q['gallery']])
        rows.append((qs, gs))
    path = str(tmp_path / 'TestG12.mat')
    save_mat(path, 'TestG12', struct_row(('Query', 'Gallery'), rows))
    _check(read_fast(path, ['TestG12'], NameIndex(pool)), queries, pool)
