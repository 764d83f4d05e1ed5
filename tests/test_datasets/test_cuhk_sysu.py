# Copyright (c) mmpsearch contributors. All rights reserved.
"""CUHKSYSUDataset on generated raw files: splits, labels, the gallery lists against the
``.mat`` files (read here independently with scipy), subsets, and bad input."""
import copy
import glob
import os
import os.path as osp
import time

import numpy as np
import pytest
import scipy.io as sio
from numpy.lib.recfunctions import repack_fields

from mmpsearch.datasets import CUHKSYSUDataset
from mmpsearch.datasets._mat import MatFormatError, save_mat
from mmpsearch.datasets.protocol import check_search_protocol


def _ds(root, split, **kw):
    return CUHKSYSUDataset(data_root=root, split=split, test_mode=split == 'test',
                           serialize_data=False, **kw)


def _ann(root, *parts):
    return osp.join(root, 'annotation', *parts)


def _images(root):
    """Images.mat read the S1/S2 way: squeeze, iterate records positionally."""
    img = sio.loadmat(_ann(root, 'Images.mat'))['Img'].squeeze()
    out = {}
    for imname, _, box in img:
        boxes = np.array([b[0][0] for b in box[0]]).astype(np.int32).reshape(-1, 4)
        out[str(imname[0])] = boxes
    return out


def _protocol_file(path, key):
    """An independent positional reading of a TestG-style file."""
    recs = sio.loadmat(path)[key].squeeze()
    out = []
    for rec in recs:
        q = rec['Query'][0, 0]
        gal = [(str(g['imname'][0]), g['idlocate'].astype(np.int32).reshape(-1))
               for g in rec['Gallery'][0]]
        out.append((str(q['imname'][0]), q['idlocate'].astype(np.int32).reshape(-1),
                    str(q['idname'][0]), gal))
    return out


def _xyxy(b):
    return [float(b[0]), float(b[1]), float(b[0] + b[2]), float(b[1] + b[3])]


def test_splits_and_train_labels(cuhk_root):
    root, summary = cuhk_root
    images = _images(root)
    pool = [str(c[0][0]) for c in sio.loadmat(_ann(root, 'pool.mat'))['pool']]
    train = _ds(root, 'train')
    # training images: all minus pool, sorted by name (raw_formats.md D6)
    assert [d['img_id'] for d in train.data_list] == sorted(set(images) - set(pool))
    assert len(train) == summary['train_images']
    assert train.load_stats['degenerate'] == summary['degenerate_boxes'] == 1
    cells = sio.loadmat(_ann(root, 'test', 'train_test', 'Train.mat'))['Train'].squeeze()
    assert train.metainfo['num_person_ids'] == len(cells) == summary['train_persons']
    by_name = {d['img_id']: d for d in train.data_list}
    for t, cell in enumerate(cells):
        idname, _, scene = cell[0, 0]
        pid = int(str(idname[0])[1:])
        assert scene.shape[1] >= 2
        for imname, box, _ in scene[0]:
            box = box.astype(np.int32).reshape(-1)
            hits = [ins for ins in by_name[str(imname[0])]['instances']
                    if ins['bbox'] == _xyxy(box)]
            assert hits and hits[0]['person_id'] == pid and hits[0]['person_label'] == t
    for d in train.data_list:
        n = d['img_id']
        kept = [b for b in images[n] if b[2] > 0 and b[3] > 0]
        assert [ins['bbox'] for ins in d['instances']] == [_xyxy(b) for b in kept]
        for ins in d['instances']:
            assert ins['known'] == (ins['person_id'] >= 0)
            assert (ins['person_label'] >= 0) == ins['known']


def test_test_split_protocols_match_the_files(cuhk_root):
    root, summary = cuhk_root
    pool = [str(c[0][0]) for c in sio.loadmat(_ann(root, 'pool.mat'))['pool']]
    ds = _ds(root, 'test')
    assert [d['img_id'] for d in ds.data_list] == pool  # pool.mat order
    sp = ds.metainfo['search_protocol']
    check_search_protocol(sp)
    assert set(sp['protocols']) == {'G10', 'G20', 'Occlusion', 'Resolution'}
    assert sp['dataset'] == 'CUHK-SYSU' and np.all(sp['image_cams'] == -1)
    files = {'G10': (_ann(root, 'test', 'train_test', 'TestG10.mat'), 'TestG10'),
             'G20': (_ann(root, 'test', 'train_test', 'TestG20.mat'), 'TestG20'),
             'Occlusion': (_ann(root, 'test', 'subset', 'Occlusion.mat'), 'Occlusion1'),
             'Resolution': (_ann(root, 'test', 'subset', 'Resolution.mat'), 'Test_Size')}
    first = _protocol_file(*files['G10'])
    assert len(sp['query_person_ids']) == len(first) == summary['queries']
    for q, (imname, box, idname, _) in enumerate(first):  # rows follow the first file
        assert pool[sp['query_image_idx'][q]] == imname
        assert sp['query_bboxes'][q].tolist() == _xyxy(box)
        assert sp['query_person_ids'][q] == int(idname[1:])
    for name, (path, key) in files.items():
        p = sp['protocols'][name]
        recs = _protocol_file(path, key)
        assert p['kind'] == 'listed' and p['gallery_image_idx'].shape == (len(recs),
                                                                          len(recs[0][3]))
        pos = {(int(a), int(b)): box.tolist()
               for a, b, box in zip(p['pos_query'], p['pos_slot'], p['pos_bboxes'])}
        n_pos = 0
        for r, (imname, box, idname, gal) in enumerate(recs):
            q = p['query_idx'][r]
            assert pool[sp['query_image_idx'][q]] == imname
            assert sp['query_person_ids'][q] == int(idname[1:])
            # the gallery list exactly as the file has it: order, duplicates, own image
            assert [pool[i] for i in p['gallery_image_idx'][r]] == [g[0] for g in gal]
            for s, (_, gbox) in enumerate(gal):
                if gbox.size:
                    assert pos[(r, s)] == _xyxy(gbox)
                    n_pos += 1
                else:
                    assert (r, s) not in pos
        assert n_pos == len(pos)
    # the writer's quirks survive: query 0 lists its own image, query 1 an image twice
    g20 = sp['protocols']['G20']
    assert sp['query_image_idx'][g20['query_idx'][0]] in g20['gallery_image_idx'][0]
    assert len(set(g20['gallery_image_idx'][1])) == g20['gallery_image_idx'].shape[1] - 1
    # test images are labelled: every positive gallery box carries its query's person id
    for name in ('G10', 'G20'):
        p = sp['protocols'][name]
        for r, s, box in zip(p['pos_query'], p['pos_slot'], p['pos_bboxes']):
            img = p['gallery_image_idx'][r, s]
            a, b = sp['gt_offsets'][img], sp['gt_offsets'][img + 1]
            hit = [g for g in range(a, b) if sp['gt_bboxes'][g].tolist() == box.tolist()]
            assert sp['gt_person_ids'][hit[0]] == sp['query_person_ids'][p['query_idx'][r]]
    # queries in the data_list items
    for q in range(len(first)):
        item = ds.data_list[sp['query_image_idx'][q]]
        assert any(x['query_idx'] == q and x['bbox'] == sp['query_bboxes'][q].tolist()
                   for x in item['queries'])


def test_protocol_selection_and_readers(cuhk_root):
    root, _ = cuhk_root
    ds = _ds(root, 'test', protocols=['G20'])
    assert list(ds.metainfo['search_protocol']['protocols']) == ['G20']
    slow = _ds(root, 'test', fast_mat=False)
    fast = _ds(root, 'test')
    a, b = slow.metainfo['search_protocol'], fast.metainfo['search_protocol']
    for name in a['protocols']:
        for key, v in a['protocols'][name].items():
            assert np.array_equal(v, b['protocols'][name][key])
    with pytest.raises(ValueError, match='unknown CUHK-SYSU protocol'):
        _ds(root, 'test', protocols=['G20', 'nope'])
    with pytest.raises(FileNotFoundError, match='TestG4000.mat'):
        _ds(root, 'test', protocols=['G4000'])


def test_metainfo_deepcopy_is_cheap(cuhk_root):
    ds = _ds(cuhk_root[0], 'test')
    start = time.perf_counter()
    for _ in range(20):
        copy.deepcopy(ds.metainfo)
    assert (time.perf_counter() - start) / 20 < 0.05
    p = ds.metainfo['search_protocol']['protocols']['G20']
    assert p['gallery_image_idx'].dtype == np.int64 and p['pos_bboxes'].dtype == np.float64


# --------------------------------------------------------------------------- bad input
def test_gallery_image_not_in_pool(cuhk_copy):
    path = _ann(cuhk_copy, 'test', 'train_test', 'TestG10.mat')
    var = sio.loadmat(path)['TestG10']
    var[0, 1]['Gallery'][0, 3]['imname'] = np.array(['s999999.jpg'])
    save_mat(path, 'TestG10', var)
    with pytest.raises(MatFormatError, match=r"TestG10.mat: gallery slot 3 of query 1 names "
                                             r"'s999999.jpg'"):
        _ds(cuhk_copy, 'test')


def test_malformed_annotation_files(cuhk_copy):
    images = _ann(cuhk_copy, 'Images.mat')
    var = sio.loadmat(images)['Img']
    save_mat(images, 'Images', var)
    with pytest.raises(MatFormatError, match=r"Images.mat: none of the variables \['Img'\]"):
        _ds(cuhk_copy, 'train')
    save_mat(images, 'Img', repack_fields(var[['imname', 'nAppear']]))
    with pytest.raises(MatFormatError, match=r"Images.mat: Img lacks the field\(s\) \['box'\]"):
        _ds(cuhk_copy, 'train')
    save_mat(images, 'Img', var)
    train = _ann(cuhk_copy, 'test', 'train_test', 'Train.mat')
    cells = sio.loadmat(train)['Train']
    cells[0, 0][0, 0]['idname'] = np.array(['person7'])
    save_mat(train, 'Train', cells)
    with pytest.raises(MatFormatError, match="Train.mat: person name 'person7'"):
        _ds(cuhk_copy, 'train')


def test_missing_files(cuhk_copy):
    for path in glob.glob(_ann(cuhk_copy, 'test', 'train_test', 'TestG*.mat')):
        os.remove(path)
    with pytest.raises(FileNotFoundError, match='no TestG'):
        _ds(cuhk_copy, 'test')
    img = sorted(glob.glob(osp.join(cuhk_copy, 'Image', 'SSM', '*.jpg')))[0]
    os.remove(img)
    with pytest.raises(FileNotFoundError, match=osp.basename(img)):
        _ds(cuhk_copy, 'train')
