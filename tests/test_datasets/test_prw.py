# Copyright (c) mmpsearch contributors. All rights reserved.
"""PRWDataset on generated raw files: counts, pid and camera conventions, box conversion,
the query-box fixes, the search protocol, and bad input."""
import copy
import os
import os.path as osp

import numpy as np
import pytest
import scipy.io as sio

from mmpsearch.datasets import PRWDataset
from mmpsearch.datasets._mat import MatFormatError, save_mat
from mmpsearch.datasets.prw import ANNOTATION_KEYS, prw_boxes


def _ds(root, split, **kw):
    return PRWDataset(data_root=root, split=split, test_mode=split == 'test',
                      serialize_data=False, **kw)


def _frames(root, split):
    # unsqueezed N×1 iteration, as the SeqNet-family readers do (raw_formats.md D14)
    cells = sio.loadmat(osp.join(root, f'frame_{split}.mat'))[f'img_index_{split}']
    assert cells.shape[1] == 1
    return [str(c[0][0]) for c in cells]


def _rows(root, frame):
    m = sio.loadmat(osp.join(root, 'annotations', frame + '.jpg'))  # relies on appendmat
    keys = [k for k in m if not k.startswith('__')]
    assert len(keys) == 1 and keys[0] in ANNOTATION_KEYS
    return keys[0], m[keys[0]]


def test_counts_pids_cameras_boxes(prw_root):
    root, summary = prw_root
    keys = set()
    n_boxes = n_unlabelled = 0
    for split in ('train', 'test'):
        ds = _ds(root, split)
        names = _frames(root, split)
        assert len(ds) == summary[f'{split}_frames'] == len(names)
        assert [d['img_id'] for d in ds.data_list] == [n + '.jpg' for n in names]
        for info, name in zip(ds.data_list, names):
            key, rows = _rows(root, name)
            keys.add(key)
            assert info['cam_id'] == int(name[1])
            assert (info['width'], info['height']) in {(192, 144), (152, 114)}
            pids = [ins['person_id'] for ins in info['instances']]
            assert pids == [-1 if p == -2 else int(p) for p in rows[:, 0]]
            # `known` follows the label map (docs/data_contract.md §1)
            assert all(ins['known'] == (ins['person_label'] >= 0)
                       for ins in info['instances'])
            # SeqNet/OIMNet++ conversion: clip x, y, w, h at 0, add, truncate
            c = np.maximum(rows[:, 1:], 0)
            expect = np.floor(np.concatenate([c[:, :2], c[:, :2] + c[:, 2:]], axis=1))
            got = np.array([ins['bbox'] for ins in info['instances']]).reshape(-1, 4)
            assert np.array_equal(got, expect)
            n_boxes += len(rows)
            n_unlabelled += int((rows[:, 0] == -2).sum())
    assert len(keys) >= 2  # the writer mixes box_new / anno_file / anno_previous
    assert n_boxes == summary['boxes'] and n_unlabelled == summary['unlabelled']


def test_label_maps(prw_root):
    root, _ = prw_root
    ids = sio.loadmat(osp.join(root, 'ID_train.mat'))['ID_train']
    assert ids.shape[0] == 1 and list(ids[0]) == sorted(ids[0])
    ids = [int(v) for v in ids[0]]
    train = _ds(root, 'train')
    assert train.metainfo['num_person_ids'] == len(ids)
    for info in train.data_list:
        for ins in info['instances']:
            expect = ids.index(ins['person_id']) if ins['person_id'] > 0 else -1
            assert ins['person_label'] == expect
    test = _ds(root, 'test')
    test_ids = set(int(v) for v in sio.loadmat(osp.join(root, 'ID_test.mat'))['ID_test2'][0])
    for info in test.data_list:
        for ins in info['instances']:
            if ins['person_id'] in test_ids:
                assert ins['person_label'] == -1 and not ins['known']
    oim = _ds(root, 'train', label_mode='oimnetpp')
    assert oim.metainfo['num_person_ids'] == 482
    for info in oim.data_list:
        for ins in info['instances']:
            pid = ins['person_id']
            assert ins['person_label'] == (pid - 1 if 1 <= pid <= 482 else -1)
            assert ins['known'] == (ins['person_label'] >= 0)


def test_query_box_fixes_and_protocol(prw_root):
    root, summary = prw_root
    raw = open(osp.join(root, 'query_info.txt'), 'rb').read()
    assert raw.endswith(b'\r\n') and raw.count(b'\r\n') == raw.count(b'\n')
    lines = [ln.split() for ln in raw.decode().splitlines()]
    ds = _ds(root, 'test')
    sp = ds.metainfo['search_protocol']
    assert len(lines) == summary['queries'] == len(sp['query_person_ids'])
    assert ds.load_stats['query_box_fixes'] == summary['query_box_fixes'] == 3
    names = [d['img_id'] for d in ds.data_list]
    n_fixed = 0
    for q, tok in enumerate(lines):
        pid, frame = int(tok[0]), tok[5]
        img = sp['query_image_idx'][q]
        assert names[img] == frame + '.jpg' and sp['query_person_ids'][q] == pid
        # the query box is exactly the annotated box of that person in that frame
        a, b = sp['gt_offsets'][img], sp['gt_offsets'][img + 1]
        hits = [g for g in range(a, b) if sp['gt_person_ids'][g] == pid]
        assert len(hits) == 1
        assert np.array_equal(sp['query_bboxes'][q], sp['gt_bboxes'][hits[0]])
        _, rows = _rows(root, frame)
        row = rows[rows[:, 0] == pid][0]
        n_fixed += int(np.any(np.trunc([float(t) for t in tok[1:5]]) != np.trunc(row[1:])))
        assert all(len(t.split('.')[1]) == 4 for t in tok[1:5])
        # the image's own query list (data_list 'queries') matches the protocol row
        qs = [x for x in ds.data_list[img]['queries'] if x['query_idx'] == q]
        assert len(qs) == 1 and qs[0]['person_id'] == pid
    assert n_fixed == 3
    assert set(sp['protocols']) == {'standard', 'multi_view'}
    for name, cross in (('standard', False), ('multi_view', True)):
        p = sp['protocols'][name]
        assert p['kind'] == 'all_but_query' and p['cross_camera'] is cross
        assert np.array_equal(p['query_idx'], np.arange(len(lines)))
    assert np.array_equal(sp['image_cams'], [d['cam_id'] for d in ds.data_list])
    # every query identity also appears in another camera (multi-view has targets)
    for q in range(len(lines)):
        cam = sp['image_cams'][sp['query_image_idx'][q]]
        img_of_gt = np.repeat(np.arange(len(names)), np.diff(sp['gt_offsets']))
        same = sp['gt_person_ids'] == sp['query_person_ids'][q]
        assert np.any(sp['image_cams'][img_of_gt[same]] != cam)


def test_released_query_boxes(prw_root):
    root, _ = prw_root
    ds = _ds(root, 'test', query_box_mode='released')
    sp = ds.metainfo['search_protocol']
    for q, ln in enumerate(open(osp.join(root, 'query_info.txt')).read().splitlines()):
        x, y, w, h = (float(t) for t in ln.split()[1:5])
        expect = np.maximum(np.trunc([x, y, x + w, y + h]), 0)  # int first, then clip
        assert np.array_equal(sp['query_bboxes'][q], expect)


def test_box_modes_on_real_rows():
    # line 563 of the real query_info.txt, and a row whose fractions separate the modes
    rows = np.array([[-1.7030, 295.5756, 74.6436, 338.2289], [10.6, 20.7, 30.6, 40.5]])
    assert prw_boxes(rows, 'seqnet').tolist() == [[0, 295, 74, 633], [10, 20, 41, 61]]
    assert prw_boxes(rows, 'spnet').tolist() == [[0, 295, 74, 633], [10, 20, 40, 60]]
    np.testing.assert_allclose(prw_boxes(rows, 'float'),
                               [[0, 295.5756, 72.9406, 633.8045], [10.6, 20.7, 41.2, 61.2]])


def test_metainfo_copy_is_cheap(prw_root):
    ds = _ds(prw_root[0], 'test')
    meta = copy.deepcopy(ds.metainfo)
    sp = meta['search_protocol']
    assert sp['gt_bboxes'].dtype == np.float64 and sp['gt_offsets'].dtype == np.int64
    assert all(isinstance(v, (np.ndarray, list, dict, str, int)) for v in sp.values())


def test_subsets_of_a_test_split_are_refused(prw_root):
    with pytest.raises(ValueError, match='search protocol'):
        PRWDataset(data_root=prw_root[0], split='test', test_mode=True, indices=3)
    train = PRWDataset(data_root=prw_root[0], split='train', indices=5)
    assert len(train) == 5


# --------------------------------------------------------------------------- bad input
def _write_query_info(root, text: bytes):
    with open(osp.join(root, 'query_info.txt'), 'wb') as f:
        f.write(text)


def test_malformed_query_lines(prw_copy):
    path = osp.join(prw_copy, 'query_info.txt')
    good = open(path, 'rb').read()
    first = good.split(b'\r\n')[0]
    _write_query_info(prw_copy, good + b'605 1.0 2.0\r\n')
    n = good.count(b'\n') + 1
    with pytest.raises(ValueError, match=rf'query_info.txt:{n}: expected'):
        _ds(prw_copy, 'test')
    _write_query_info(prw_copy, b'abc ' + b' '.join(first.split()[1:]) + b'\r\n')
    with pytest.raises(ValueError, match='query_info.txt:1: cannot parse'):
        _ds(prw_copy, 'test')
    train_frame = _frames(prw_copy, 'train')[0]
    _write_query_info(prw_copy, b' '.join(first.split()[:5] + [train_frame.encode()]))
    with pytest.raises(ValueError, match='is not a test frame'):
        _ds(prw_copy, 'test')
    tok = first.split()
    tok[1] = b'%.4f' % (float(tok[1]) + 3)
    _write_query_info(prw_copy, b' '.join(tok) + b'\r\n')
    with pytest.raises(ValueError, match='matches no annotation row'):
        _ds(prw_copy, 'test')
    tok = first.split()
    tok[0] = b'999'
    _write_query_info(prw_copy, b' '.join(tok) + b'\n')  # LF only is fine, pid is not
    with pytest.raises(ValueError, match='no annotated box of person 999'):
        _ds(prw_copy, 'test')


def test_bad_annotation_files(prw_copy):
    frame = _frames(prw_copy, 'train')[0]
    path = osp.join(prw_copy, 'annotations', frame + '.jpg.mat')
    key, rows = _rows(prw_copy, frame)
    save_mat(path, 'boxes', rows)
    with pytest.raises(MatFormatError, match=rf'{frame}.jpg.mat: none of the variables'):
        _ds(prw_copy, 'train')
    save_mat(path, key, rows[:, :4])
    with pytest.raises(MatFormatError, match='n x 5'):
        _ds(prw_copy, 'train')
    bad = rows.copy()
    bad[0, 0] = 0
    save_mat(path, key, bad)
    with pytest.raises(MatFormatError, match='person id 0'):
        _ds(prw_copy, 'train')
    with open(path, 'wb') as f:
        f.write(b'\x00garbage' * 30)
    with pytest.raises(MatFormatError, match=rf'{frame}.jpg.mat: not a readable'):
        _ds(prw_copy, 'train')
    os.remove(path)
    with pytest.raises(FileNotFoundError, match=rf'{frame}.jpg.mat'):
        _ds(prw_copy, 'train')


def test_box_outside_image(prw_copy):
    frame = _frames(prw_copy, 'train')[1]
    path = osp.join(prw_copy, 'annotations', frame + '.jpg.mat')
    key, rows = _rows(prw_copy, frame)
    bad = np.concatenate([rows, [[-2, 500.5, 10.5, 30.5, 60.5]]])
    save_mat(path, key, bad)
    with pytest.raises(ValueError, match=rf'{frame}.jpg.mat: box .* outside'):
        _ds(prw_copy, 'train')
    ds = _ds(prw_copy, 'train', bad_box='skip')
    assert ds.load_stats['outside_image'] == 1
    info = next(d for d in ds.data_list if d['img_id'] == frame + '.jpg')
    assert len(info['instances']) == len(rows)


def test_missing_or_corrupt_image(prw_copy):
    frame = _frames(prw_copy, 'train')[2]
    img = osp.join(prw_copy, 'frames', frame + '.jpg')
    with open(img, 'wb') as f:
        f.write(b'\xff\xd8 definitely not a jpeg')
    with pytest.raises(ValueError, match=rf'{frame}.jpg: not a readable image'):
        _ds(prw_copy, 'train')
    os.remove(img)
    with pytest.raises(FileNotFoundError, match=rf'{frame}.jpg'):
        _ds(prw_copy, 'train')


@pytest.fixture(scope='module')
def prw_real_pids(tmp_path_factory):
    """A small PRW-layout set numbered like the real PRW: training ids 1, 2, 483, 932;
    test ids 479, 484, 485."""
    from mmpsearch.datasets.synthetic import make_synthetic
    root = str(tmp_path_factory.mktemp('prw_real_pids'))
    make_synthetic(root, layout='prw', seed=5, image_size=(128, 96), num_cameras=2,
                   num_train_frames=12, num_test_frames=8, num_train_ids=4, num_test_ids=3,
                   prw_pids='real')
    return root


def test_synthetic_real_pid_numbering(prw_real_pids):
    ids = sio.loadmat(osp.join(prw_real_pids, 'ID_train.mat'))['ID_train'][0].tolist()
    assert ids == [1, 2, 483, 932]
    test_ids = sio.loadmat(osp.join(prw_real_pids, 'ID_test.mat'))['ID_test2'][0].tolist()
    assert test_ids == [479, 484, 485]


@pytest.mark.parametrize('split', ['train', 'test'])
def test_known_follows_the_oimnetpp_label_map(prw_real_pids, split):
    """OIMNet++ makes the training ids 483 and 932 unlabelled: they get no LUT row and
    must not be `known`, or the OIM loss refuses the batch (they go to the queue)."""
    ds = _ds(prw_real_pids, split, label_mode='oimnetpp')
    seen = set()
    for info in ds.data_list:
        for ins in info['instances']:
            pid = ins['person_id']
            assert ins['person_label'] == (pid - 1 if 1 <= pid <= 482 else -1)
            assert ins['known'] == (ins['person_label'] >= 0)
            seen.add(pid)
    if split == 'train':
        assert {483, 932} <= seen
    sorted_map = _ds(prw_real_pids, 'train')  # the same ids are ordinary rows under 'sorted'
    rows = {ins['person_id']: (ins['person_label'], ins['known'])
            for info in sorted_map.data_list for ins in info['instances']}
    assert rows[483] == (2, True) and rows[932] == (3, True)


def _real_prw_json():
    root = os.environ.get('MMPSEARCH_REAL_DATA') or osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), '..', 'shared', 'real')
    path = osp.join(root, 'prw_alignps', 'test_pid.json')
    if not osp.isfile(path):
        pytest.skip(f'the real PRW annotations are not here ({path}); set '
                    'MMPSEARCH_REAL_DATA to the folder holding prw_alignps/')
    return path


def test_label_maps_on_real_prw_annotations(tmp_path):
    """The real test frames that show training id 483 (10 boxes), written in the raw layout
    with the real ID_train ({1..478, 480..483, 932}) and read as a training split."""
    import json

    from PIL import Image
    with open(_real_prw_json()) as f:
        real = json.load(f)
    images = {im['id']: im for im in real['images']}
    by_image = {}
    for a in real['annotations']:
        by_image.setdefault(a['image_id'], []).append(a)
    chosen = sorted({a['image_id'] for a in real['annotations'] if a['person_id'] == 483})
    assert len(chosen) == 10
    os.makedirs(tmp_path / 'frames')
    os.makedirs(tmp_path / 'annotations')
    names = []
    for i in chosen:
        im = images[i]
        name = im['file_name'][:-4]
        names.append(name)
        Image.new('RGB', (im['width'], im['height'])).save(tmp_path / 'frames' / im['file_name'])
        rows = np.array([[a['person_id']] + a['bbox'] for a in by_image[i]], np.float64)
        save_mat(str(tmp_path / 'annotations' / (im['file_name'] + '.mat')), 'box_new', rows)
    from mmpsearch.datasets._mat import cell_column, mat_num
    save_mat(str(tmp_path / 'frame_train.mat'), 'img_index_train', cell_column(sorted(names)))
    train_ids = [p for p in range(1, 484) if p != 479] + [932]
    save_mat(str(tmp_path / 'ID_train.mat'), 'ID_train', mat_num(train_ids))
    pids = {a['person_id'] for i in chosen for a in by_image[i]}
    assert 483 in pids and min(p for p in pids if p > 0) <= 482
    for mode in ('oimnetpp', 'sorted'):
        ds = _ds(str(tmp_path), 'train', label_mode=mode)
        for info in ds.data_list:
            for ins in info['instances']:
                pid = ins['person_id']
                if mode == 'oimnetpp':
                    label = pid - 1 if 1 <= pid <= 482 else -1
                else:
                    label = train_ids.index(pid) if pid in train_ids else -1
                assert ins['person_label'] == label, (mode, pid)
                assert ins['known'] == (label >= 0), (mode, pid)
        n483 = [ins for info in ds.data_list for ins in info['instances']
                if ins['person_id'] == 483]
        assert len(n483) == 10
        assert all(ins['known'] == (mode == 'sorted') for ins in n483)


def test_training_frames_without_boxes_are_reported_once(prw_copy):
    """A training frame whose every box is dropped trains on nothing: one warning at load
    time names how many and which (and filter_empty_gt drops them)."""
    import logging

    from mmengine.logging import MMLogger
    frames = _frames(prw_copy, 'train')
    for frame in frames[:2]:
        path = osp.join(prw_copy, 'annotations', frame + '.jpg.mat')
        key, rows = _rows(prw_copy, frame)
        rows = rows.copy()
        rows[:, 3] = 0  # w = 0: degenerate, dropped as the official loaders do
        save_mat(path, key, rows)

    class Records(logging.Handler):
        def __init__(self):
            super().__init__()
            self.messages = []

        def emit(self, record):
            self.messages.append((record.levelno, record.getMessage()))

    logger = MMLogger.get_current_instance()
    handler = Records()
    logger.addHandler(handler)
    try:
        ds = _ds(prw_copy, 'train')
        ds[0]  # noqa: B018  (using the dataset does not warn again)
        ds[1]  # noqa: B018
        filtered = _ds(prw_copy, 'train', filter_cfg=dict(filter_empty_gt=True))
        _ds(prw_copy, 'test')
    finally:
        logger.removeHandler(handler)
    warned = [m for lvl, m in handler.messages if 'have no annotated box' in m
              and lvl == logging.WARNING]
    assert len(warned) == 1
    assert f'2 of {len(frames)} training frames' in warned[0]
    assert f'{frames[0]}.jpg' in warned[0] and f'{frames[1]}.jpg' in warned[0]
    assert ds.load_stats['frames_without_boxes'] == 2
    assert filtered.load_stats['frames_without_boxes'] == 0
    assert len(filtered) == len(frames) - 2
