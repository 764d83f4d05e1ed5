# Copyright (c) mmpsearch contributors. All rights reserved.
"""The synthetic set: determinism, the properties that make it a person-search task, the
``loadmat`` structure of the written files (raw_formats.md §2, §5), and the CLI."""
import hashlib
import json
import os
import os.path as osp
import re
import subprocess
import sys
from collections import Counter
from dataclasses import asdict

import numpy as np
import pytest
import scipy.io as sio

from mmpsearch.datasets.synthetic import (SyntheticConfig, _long_tail_counts,
                                          generate_world)

from .conftest import SMALL

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_deterministic_from_seed(small_world):
    again = generate_world(SMALL, seed=3)
    assert [f.jpeg for f in again.frames] == [f.jpeg for f in small_world.frames]
    assert [[p.box for p in f.persons] for f in again.frames] == \
        [[p.box for p in f.persons] for f in small_world.frames]
    other = generate_world(SyntheticConfig(**{**asdict(SMALL), 'num_train_frames': 4,
                                              'num_test_frames': 3, 'num_train_ids': 2,
                                              'num_test_ids': 2}), seed=4)
    assert other.frames[0].jpeg != small_world.frames[0].jpeg


def test_same_set_in_every_process():
    """The frames depend on the seed only, not on the process's string-hash seed."""
    # every identity after the first is a near-duplicate: all attribute-change kinds occur
    cfg = SyntheticConfig(**{**asdict(SMALL), 'near_duplicate_frac': 1.0})
    code = ('import hashlib; from mmpsearch.datasets.synthetic import SyntheticConfig, '
            f'generate_world; w = generate_world(SyntheticConfig(**{asdict(cfg)!r}), 5); '
            'print(hashlib.sha1(b"".join(f.jpeg for f in w.frames)).hexdigest())')
    digests = set()
    for hash_seed in ('1', '2'):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed,
                   PYTHONPATH=os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')]))
        out = subprocess.run([sys.executable, '-c', code], env=env, cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.split()
        digests.add(out[-1])
    assert len(digests) == 1
    world = generate_world(cfg, seed=5)
    assert digests == {hashlib.sha1(b''.join(f.jpeg for f in world.frames)).hexdigest()}


def test_default_counts_are_long_tailed():
    cfg = SyntheticConfig()
    for n_ids, n_frames in ((cfg.num_train_ids, cfg.num_train_frames),
                            (cfg.num_test_ids, cfg.num_test_frames)):
        counts = _long_tail_counts(n_ids, n_frames, cfg)
        assert min(counts) >= 2
        assert max(counts) / min(counts) >= 0.8 * cfg.long_tail  # "20× more than others"
        assert abs(sum(counts) - cfg.labelled_per_frame * n_frames) < 0.25 * sum(counts)


def test_world_properties(small_world):
    w = small_world
    idents = {i.index: i for i in w.identities}
    apps = Counter(p.identity for f in w.frames for p in f.persons if p.identity >= 0)
    n_unknown = sum(p.identity < 0 for f in w.frames for p in f.persons)
    assert n_unknown > 0
    for i in w.identities:
        own = [f for f, _ in w.appearances(i.index) if f.split == i.split]
        assert len(own) == i.count >= 2
        assert len({f.camera for f in own}) >= 2  # seen by at least two cameras
        assert all(sum(p.identity == i.index for p in f.persons) <= 1 for f in w.frames)
    train = {i.index for i in w.identities if i.split == 'train'}
    assert not any(p.identity >= 0 and p.identity not in train
                   for f in w.split_frames('train') for p in f.persons)
    assert max(apps.values()) > min(apps.values())
    # near-duplicates differ from their twin in exactly one attribute
    twins = [i for i in w.identities if i.twin_of is not None]
    assert twins
    for i in twins:
        a, b = asdict(i.appearance), asdict(idents[i.twin_of].appearance)
        diff = [k for k in a if a[k] != b[k]]
        assert 1 <= len(diff) <= 2  # 'top2' may switch a solid top to stripes too
    vis = [p.visible for f in w.frames for p in f.persons]
    assert min(vis) < 0.8 and np.median(vis) > 0.7  # occlusion happens, not everywhere
    for f in w.frames:
        W, H = f.size
        for p in f.persons:
            x1, y1, x2, y2 = p.box
            assert x2 > 0 and y2 > 0 and x1 < W and y1 < H and y2 - y1 >= 10
    assert len({f.size for f in w.frames}) == 2  # the last camera is smaller


def test_prw_files_structure(prw_root):
    root, summary = prw_root
    for split in ('train', 'test'):
        cells = sio.loadmat(osp.join(root, f'frame_{split}.mat'))[f'img_index_{split}']
        assert cells.dtype == object and cells.shape == (summary[f'{split}_frames'], 1)
        assert cells[0, 0].dtype.kind == 'U' and cells[0, 0].shape == (1, )
    ann = sorted(os.listdir(osp.join(root, 'annotations')))
    assert all(a.endswith('.jpg.mat') for a in ann)
    m = sio.loadmat(osp.join(root, 'annotations', ann[0]))
    (key, rows), = [(k, v) for k, v in m.items() if not k.startswith('__')]
    assert rows.dtype == np.float64 and rows.shape[1] == 5
    assert np.all(rows[:, 1:] != np.round(rows[:, 1:]))  # non-integer coordinates
    assert sio.loadmat(osp.join(root, 'ID_train.mat'))['ID_train'].shape[0] == 1
    assert 'ID_test2' in sio.loadmat(osp.join(root, 'ID_test.mat'))
    raw = open(osp.join(root, 'query_info.txt'), 'rb').read()
    line = re.compile(rb'^\d+ -?\d+\.\d{4} -?\d+\.\d{4} \d+\.\d{4} \d+\.\d{4} c\ds\d_\d{6}$')
    assert raw.endswith(b'\r\n')
    assert all(line.match(ln) for ln in raw.split(b'\r\n')[:-1])
    assert len(os.listdir(osp.join(root, 'query_box'))) == summary['queries']


def test_cuhk_files_structure(cuhk_root):
    root, summary = cuhk_root
    ann = osp.join(root, 'annotation')
    img = sio.loadmat(osp.join(ann, 'Images.mat'))['Img']
    assert img.shape == (1, summary['images']) and img.dtype.names == ('imname', 'nAppear',
                                                                       'box')
    box_types = Counter()
    for rec in img[0]:
        assert rec['nAppear'].dtype == np.uint8 and rec['nAppear'].shape == (1, 1)
        assert rec['box'].shape[0] == 1 and rec['box'].dtype.names == ('idlocate', 'ishard')
        for b in rec['box'][0]:
            assert b['idlocate'].shape == (1, 4) and b['ishard'].dtype == np.uint8
            box_types[b['idlocate'].dtype] += 1
    assert set(box_types) <= {np.dtype(np.uint8), np.dtype(np.uint16)}
    pool = sio.loadmat(osp.join(ann, 'pool.mat'))['pool']
    assert pool.shape == (summary['test_images'], 1)
    train = sio.loadmat(osp.join(ann, 'test', 'train_test', 'Train.mat'))['Train']
    assert train.shape == (summary['train_persons'], 1)
    assert train[0, 0].shape == (1, 1) and train[0, 0].dtype.names == ('idname', 'nAppear',
                                                                       'scene')
    assert all(c[0, 0]['scene'].shape[1] >= 2 for c in train[:, 0])
    person = sio.loadmat(osp.join(ann, 'Person.mat'))['Person']
    assert person.shape[0] == 1 and person.dtype.names == ('idname', 'nAppear', 'scene')
    g = sio.loadmat(osp.join(ann, 'test', 'train_test', 'TestG20.mat'))['TestG20']
    assert g.shape == (1, summary['queries']) and g.dtype.names == ('Query', 'Gallery')
    q = g[0, 0]['Query']
    assert q.shape == (1, 1) and q.dtype.names == ('imname', 'idlocate', 'ishard', 'idname')
    gal = g[0, 0]['Gallery']
    assert gal.shape == (1, 20) and gal.dtype.names == ('imname', 'idlocate', 'ishard')
    empty = [e for e in gal[0] if e['idlocate'].size == 0]
    assert empty and all(e['idlocate'].shape == (1, 0) and e['idlocate'].dtype == np.float64
                         and e['ishard'].shape == (1, 0) for e in empty)
    sizes = [e['idlocate'].size for e in gal[0]]
    assert sizes == sorted(sizes, reverse=True)  # positives first
    occ = sio.loadmat(osp.join(ann, 'test', 'subset', 'Occlusion.mat'))
    assert occ['Occlusion1'].dtype.names == ('Query', 'Gallery', 'occlusion')
    res = sio.loadmat(osp.join(ann, 'test', 'subset', 'Resolution.mat'))
    assert res['Test_Size'].dtype.names == ('Query', 'Gallery')
    # the S1/S2 readers squeeze every list and iterate: no list may be a singleton
    for arr in (img, pool, train, g, occ['Occlusion1'], res['Test_Size']):
        assert len(list(arr.squeeze())) >= 2


def test_make_synthetic_cli(tmp_path):
    from importlib import util
    spec = util.spec_from_file_location('make_synthetic', osp.join(ROOT, 'tools',
                                                                   'make_synthetic.py'))
    tool = util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tmp_path / 'syn')

    def args(seed=1, sizes=('4', '6'), *extra):
        return ['--out', out, '--layout', 'cuhk', '--seed', str(seed), '--num-train-frames',
                '6', '--num-test-frames', '8', '--num-train-ids', '2', '--num-test-ids', '2',
                '--image-size', '96', '72', '--num-cameras', '2', '--gallery-sizes', *sizes,
                *extra]

    tool.main(args())
    stamp = json.load(open(osp.join(out, 'synthetic.json')))
    assert stamp['layout'] == 'cuhk' and stamp['config']['gallery_sizes'] == [4, 6]
    assert osp.isfile(osp.join(out, 'annotation', 'test', 'train_test', 'TestG6.mat'))
    mtime = os.path.getmtime(osp.join(out, 'synthetic.json'))
    tool.main(args(1, ('4', '6'), '--skip-existing'))
    assert os.path.getmtime(osp.join(out, 'synthetic.json')) == mtime
    with pytest.raises(SystemExit, match='different synthetic set'):
        tool.main(args(2, ('4', '6'), '--skip-existing'))
    with pytest.raises(ValueError, match='gallery size 40'):
        tool.main(args(1, ('4', '40'), '--overwrite'))
    assert sorted(os.listdir(tmp_path)) == ['syn']  # no half-written set left behind
    assert json.load(open(osp.join(out, 'synthetic.json'))) == stamp


def test_prw_person_id_numbering():
    from mmpsearch.datasets._synthetic_writers import prw_person_ids
    assert prw_person_ids(3, 2) == [1, 2, 3, 4, 5]
    assert prw_person_ids(4, 3, 'real') == [1, 2, 483, 932, 479, 484, 485]
    # at the real size: training ids {1..478, 480..483, 932}, test ids {479, 484..931, 933}
    ids = prw_person_ids(483, 450, 'real')
    assert ids[:483] == [p for p in range(1, 484) if p != 479] + [932]
    assert sorted(ids[483:]) == [479] + list(range(484, 932)) + [933]
    with pytest.raises(ValueError, match='at most 483 training'):
        prw_person_ids(484, 2, 'real')
    with pytest.raises(ValueError, match="prw_pids must be 'dense' or 'real'"):
        SyntheticConfig(prw_pids='other').validate()


def test_coco_layout_has_unlabelled_people_in_scenes_of_its_own(tmp_path, small_world):
    """--layout coco: COCO instances files read by COCOPersonsDataset, every box its own
    identity, and other frames than the person-search layouts of the same seed."""
    from mmpsearch.datasets import COCOPersonsDataset
    from mmpsearch.datasets.synthetic import (COCO_STREAM, coco_config, generate_world,
                                              make_synthetic)
    root = tmp_path / 'coco'
    summary = make_synthetic(str(root), layout='coco', seed=3, config=SMALL)
    assert summary['train_images'] == SMALL.num_train_frames
    assert summary['test_images'] == SMALL.num_test_frames
    for name in ('instances_train2017.json', 'instances_val2017.json'):
        with open(root / 'annotations' / name) as f:
            coco = json.load(f)
        assert [c['name'] for c in coco['categories']] == ['person']
        assert not any(a['iscrowd'] for a in coco['annotations'])
        assert not any('person_id' in a or 'track_id' in a for a in coco['annotations'])
    ds = COCOPersonsDataset(data_root=str(root), serialize_data=False)
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    pids = [ins['person_id'] for d in infos for ins in d['instances']]
    assert len(pids) == len(set(pids)) == summary['train_boxes']
    assert all(ins['known'] for d in infos for ins in d['instances'])
    assert sum(len(d['instances']) for d in infos) / len(infos) > 1.5  # crowded frames
    coco_world = generate_world(coco_config(SMALL), 3, COCO_STREAM)
    assert coco_world.frames[0].jpeg != small_world.frames[0].jpeg
