# Copyright (c) mmpsearch contributors. All rights reserved.
"""The vectorised protocol reader on the original CUHK-SYSU ``TestG100.mat`` (MATLAB 5.0,
MACI64, one compressed variable; raw_formats.md "Byte-level encoding"): it must decode
MATLAB's encodings itself (zero-byte empty elements, class double with uint8/uint16
data, UTF-8 chars) and agree with ``scipy.io.loadmat`` element for element.

The original file is not part of the repository; see :mod:`.real_data` for where it is
looked up (CI has it)."""
import numpy as np
import pytest
import scipy.io as sio

from mmpsearch.datasets._mat_protocol import NameIndex, read_protocol_mat
from mmpsearch.datasets._mat_stream import read_fast

from . import mat_walk
from .real_data import real_file


@pytest.fixture(scope='module')
def real_testg100():
    """(path, loadmat's TestG100 variable, the 6,978 gallery names sorted)."""
    path = real_file('cuhk_sysu', 'TestG100.mat')
    var = sio.loadmat(path)['TestG100']
    names = sorted({str(g['imname'][0]) for rec in var[0] for g in rec['Gallery'][0]})
    return path, var, names


def _loadmat_entries(var):
    """Every query and gallery entry as loadmat shows it: (name, box or None, hard or None)
    with the storage dtypes counted."""
    queries, gallery, dtypes = [], [], {}

    def leaf(x, what):
        dtypes[(what, x.dtype.str, x.shape)] = dtypes.get((what, x.dtype.str, x.shape), 0) + 1
        return None if x.size == 0 else x.reshape(-1).astype(np.int64).tolist()

    for rec in var[0]:
        q = rec['Query'][0, 0]
        queries.append((str(q['imname'][0]), leaf(q['idlocate'], 'q.box'),
                        leaf(q['ishard'], 'q.hard')[0], str(q['idname'][0])))
        gallery.append([(str(g['imname'][0]), leaf(g['idlocate'], 'g.box'),
                         leaf(g['ishard'], 'g.hard')) for g in rec['Gallery'][0]])
    return queries, gallery, dtypes


def test_fast_reader_decodes_the_original_file_itself(real_testg100):
    path, var, names = real_testg100
    index = NameIndex(names)
    table = read_fast(path, ['TestG100'], index)  # raises Unsupported on a fallback
    assert read_protocol_mat(path, ['TestG100'], index).reader == 'fast'
    queries, gallery, dtypes = _loadmat_entries(var)
    # the file really holds the encodings this test is about (raw_formats.md)
    assert dtypes[('g.box', '|u1', (1, 4))] == 864 and dtypes[('g.box', '<u2', (1, 4))] == 4583
    assert dtypes[('q.box', '|u1', (1, 4))] == 437 and dtypes[('q.box', '<u2', (1, 4))] == 2463
    assert dtypes[('g.box', '<f8', (1, 0))] == dtypes[('g.hard', '<f8', (1, 0))] == 284553
    # queries, element for element
    assert table.var_name == 'TestG100'
    assert table.query_names == [q[0] for q in queries]
    assert table.query_boxes.tolist() == [q[1] for q in queries]
    assert table.query_hard.tolist() == [q[2] for q in queries]
    assert table.query_idnames == [q[3] for q in queries]
    # every gallery slot: its image, and its box and flag or their absence
    assert table.gallery_image_idx.shape == (2900, 100)
    got_names = np.asarray(names)[table.gallery_image_idx]
    assert got_names.tolist() == [[g[0] for g in row] for row in gallery]
    expect = [(q, s, g[1], g[2][0]) for q, row in enumerate(gallery)
              for s, g in enumerate(row) if g[1] is not None]
    assert all((g[1] is None) == (g[2] is None) for row in gallery for g in row)
    assert table.pos_query.tolist() == [e[0] for e in expect]
    assert table.pos_slot.tolist() == [e[1] for e in expect]
    assert table.pos_boxes.tolist() == [e[2] for e in expect]
    assert table.pos_hard.tolist() == [e[3] for e in expect]
    assert len(expect) == 5447 and table.unknown_names == []


def test_original_file_layout(real_testg100):
    """The byte-level facts the reader and the synthetic writer rely on."""
    w = mat_walk.walk(real_testg100[0])
    assert w.header.startswith('MATLAB 5.0 MAT-file, Platform: MACI64, Created on: ')
    assert (w.version, w.endian, w.top_elements) == (0x0100, b'IM', (15, ))
    enc = mat_walk.encodings(w)
    empty = ('zero-byte', None, None)
    assert enc['.Gallery.idlocate'] == {empty, (6, 2, 'small'), (6, 4, 'regular')}
    assert enc['.Gallery.ishard'] == {empty, (6, 2, 'small')}
    assert enc['.Gallery.imname'] == {(4, 16, 'regular')}
    assert w.leaves[('.Gallery.idlocate', ) + empty] == 284553
    assert w.leaves[('.Gallery.ishard', ) + empty] == 284553
