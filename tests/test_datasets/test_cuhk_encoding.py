# Copyright (c) mmpsearch contributors. All rights reserved.
"""The synthetic CUHK-SYSU writer encodes its files as MATLAB encoded the originals
(raw_formats.md "Byte-level encoding"), so generated files exercise the reader paths the
original files take: per-field (class, data type) mixtures as in the original
``TestG100.mat``, and the vectorised reader agrees with scipy on every protocol file."""
import glob
import os.path as osp

import numpy as np
import pytest
import scipy.io as sio

from mmpsearch.datasets._mat_protocol import NameIndex, read_protocol_mat
from mmpsearch.datasets._mat_stream import read_fast
from mmpsearch.datasets._synthetic_writers import write_cuhk
from mmpsearch.datasets.synthetic import SyntheticConfig, generate_world

from . import mat_walk
from .real_data import real_file

# frames wider than 256 px, so that boxes take both storage types (uint8 and uint16)
CONFIG = SyntheticConfig(image_size=(480, 320), num_cameras=3, num_train_frames=12,
                         num_test_frames=40, num_train_ids=4, num_test_ids=6,
                         gallery_sizes=(20, 30), long_tail=3.0, jpeg_quality=50)
EMPTY = (mat_walk.ZERO_BYTE, None, None)
DOUBLE_U8, DOUBLE_U16, UTF8 = (6, 2, 'small'), (6, 4, 'regular'), (4, 16, 'regular')


@pytest.fixture(scope='module')
def cuhk_tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cuhk_matlab'))
    write_cuhk(generate_world(CONFIG, seed=5), root)
    return root


def _ann(root, *parts):
    return osp.join(root, 'annotation', *parts)


def test_every_file_uses_the_original_encodings(cuhk_tree):
    files = sorted(glob.glob(_ann(cuhk_tree, '**', '*.mat'), recursive=True))
    assert len(files) == 8  # Images, Person, pool, Train, TestG20/30, Occlusion, Resolution
    for path in files:
        w = mat_walk.walk(path)
        assert w.header.startswith('MATLAB 5.0 MAT-file, Platform: MACI64, Created on: ')
        assert (w.version, w.endian, w.top_elements) == (0x0100, b'IM', (15, )), path
        for where, forms in mat_walk.encodings(w).items():
            for form in forms:
                # numbers: class double with uint8 (small) / uint16 data; names: UTF-8
                # (small when ≤ 4 bytes, e.g. 'p12'); empties: zero-byte elements
                assert form in (EMPTY, DOUBLE_U8, DOUBLE_U16, UTF8, (4, 16, 'small')), \
                    (path, where, form)
    testg = mat_walk.encodings(mat_walk.walk(_ann(cuhk_tree, 'test', 'train_test',
                                                  'TestG20.mat')))
    assert testg['.Gallery.idlocate'] == {EMPTY, DOUBLE_U8, DOUBLE_U16}
    assert testg['.Gallery.ishard'] == {EMPTY, DOUBLE_U8}
    images = mat_walk.encodings(mat_walk.walk(_ann(cuhk_tree, 'Images.mat')))
    assert images['.box.idlocate'] == {DOUBLE_U8, DOUBLE_U16}
    assert images['.nAppear'] == images['.box.ishard'] == {DOUBLE_U8}


@pytest.mark.parametrize('name,var', [('test/train_test/TestG20.mat', 'TestG20'),
                                      ('test/train_test/TestG30.mat', 'TestG30'),
                                      ('test/subset/Occlusion.mat', 'Occlusion1'),
                                      ('test/subset/Resolution.mat', 'Test_Size')])
def test_fast_reader_equals_scipy_on_generated_files(cuhk_tree, name, var):
    path = _ann(cuhk_tree, *name.split('/'))
    pool = [str(c[0][0]) for c in sio.loadmat(_ann(cuhk_tree, 'pool.mat'))['pool']]
    index = NameIndex(pool)
    fast = read_fast(path, [var], index)  # raises Unsupported instead of falling back
    slow = read_protocol_mat(path, [var], index, fast=False)
    assert slow.reader == 'scipy'
    for f in ('var_name', 'query_names', 'query_idnames', 'unknown_names'):
        assert getattr(fast, f) == getattr(slow, f), f
    for f in ('query_boxes', 'query_hard', 'gallery_image_idx', 'pos_query', 'pos_slot',
              'pos_boxes', 'pos_hard'):
        a, b = getattr(fast, f), getattr(slow, f)
        assert a.dtype == b.dtype and np.array_equal(a, b), f
    assert fast.pos_query.size > 0 and np.all(fast.gallery_image_idx >= 0)
    for k, values in slow.extra.items():  # Occlusion1's third field
        assert [np.asarray(v).tolist() for v in fast.extra[k]] == \
            [np.asarray(v).tolist() for v in values]


def test_generated_testg_matches_the_original_element_types(cuhk_tree):
    """Per field, the (class, data type, element form) set of a generated TestG file is the
    original TestG100's (person names: the generated ones are all ≤ 4 bytes, so small)."""
    real = mat_walk.walk(real_file('cuhk_sysu', 'TestG100.mat'))
    ours = mat_walk.walk(_ann(cuhk_tree, 'test', 'train_test', 'TestG20.mat'))
    assert ours.containers.keys() == real.containers.keys()
    enc_real, enc_ours = mat_walk.encodings(real), mat_walk.encodings(ours)
    assert enc_ours.keys() == enc_real.keys()
    for where in enc_real:
        if where == '.Query.idname':
            assert enc_ours[where] <= enc_real[where]
        else:
            assert enc_ours[where] == enc_real[where], where
    assert (ours.header[:52], ours.version, ours.endian, ours.top_elements) == \
        (real.header[:52], real.version, real.endian, real.top_elements)
