# Copyright (c) mmpsearch contributors. All rights reserved.
"""Writers of a :class:`SyntheticWorld` in the PRW and CUHK-SYSU raw layouts.

They reproduce the ``loadmat`` structure of the real files (raw_formats.md §5): uint8 /
uint16 box storage chosen per box, (1,0) empty gallery boxes, N×1 cells, 1×N structs,
PRW annotations as n×5 non-integer doubles under the three key names, CRLF query lines
with 4 decimals, ``ID_test2``, ``Occlusion1`` with its third field, ``Test_Size``.

The CUHK-SYSU files are also encoded byte for byte as MATLAB wrote the originals
(:mod:`._mat_writer`: zero-byte empty elements, class double with uint8/uint16 data,
UTF-8 chars, one compressed variable, a MACI64 header), so they exercise the same reader
paths as the original files; the PRW files are written with scipy's ``savemat``.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np

from ._mat import cell_column, mat_empty, mat_num, save_mat, struct_row
from ._mat_writer import save_matlab
from .synthetic import Frame, SyntheticWorld

PRW_KEYS = ('box_new', 'anno_file', 'anno_previous')
PRW_KEY_PROBS = (0.7, 0.2, 0.1)


def _write_jpeg(path: str, data: bytes) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def _frac(rng: np.random.Generator, n: int) -> np.ndarray:
    """Fractional parts in [0.02, 0.98]: a value printed with 4 decimals then never
    rounds across an integer (only the deliberate query-box cases do)."""
    return rng.uniform(0.02, 0.98, n)


def _query_choice(world: SyntheticWorld, ident: int) -> Dict[int, Tuple[Frame, int]]:
    """Best-visible appearance of a test identity per camera."""
    best: Dict[int, Tuple[float, Frame, int]] = {}
    for f, k in world.appearances(ident):
        if f.split != 'test':
            continue
        p = f.persons[k]
        if p.visible < 0.6:  # a query shows most of its person
            continue
        score = (min(p.visible, 0.85), p.height)
        if f.camera not in best or score > best[f.camera][0]:
            best[f.camera] = (score, f, k)
    return {cam: (f, k) for cam, (_, f, k) in sorted(best.items())}


# ----------------------------------------------------------------------------- PRW
def prw_person_ids(num_train: int, num_test: int, mode: str = 'dense') -> List[int]:
    """PRW person ids of the training then the test identities.

    Args:
        num_train, num_test (int): identities per split.
        mode (str): ``'dense'`` (``1..num_train+num_test``) or ``'real'``: numbered like
            the real PRW, whose training ids are {1..478, 480..483, 932} and test ids
            {479, 484..931, 933} (raw_formats.md §2.3): the last two training identities
            get 483 and 932, the others 1, 2, ... (skipping 479); the test identities get
            479, then 484, 485, ... (skipping 932).

    Returns:
        list[int]: ``num_train + num_test`` distinct positive ids.
    """
    if mode == 'dense':
        return list(range(1, num_train + num_test + 1))
    if mode != 'real':
        raise ValueError(f"mode must be 'dense' or 'real', got {mode!r}")
    train = [p for p in range(1, 483) if p != 479][:max(num_train - 2, 0)]
    train += [483, 932][:num_train - len(train)]
    test = [479] + [p for p in range(484, 934) if p != 932]
    ids = train + test[:num_test]
    if len(ids) != num_train + num_test:
        raise ValueError(f"mode='real' numbers at most 483 training and 450 test "
                         f'identities, got {num_train} and {num_test}')
    return ids


def write_prw(world: SyntheticWorld, out: str) -> dict:
    """Write ``frames/``, ``annotations/``, ``frame_{train,test}.mat``, ``ID_*.mat``,
    ``query_info.txt`` and ``query_box/`` under ``out``."""
    rng = np.random.default_rng([world.seed, 7])
    train_ids = [i.index for i in world.identities if i.split == 'train']
    test_ids = [i.index for i in world.identities if i.split == 'test']
    pid = dict(zip(train_ids + test_ids, prw_person_ids(len(train_ids), len(test_ids),
                                                        world.config.prw_pids)))
    names = {f.index: f'c{f.camera + 1}s{1 if f.split == "train" else 2}_{f.time:06d}'
             for f in world.frames}
    rows: Dict[int, np.ndarray] = {}
    for f in world.frames:
        W, H = f.size
        r = np.zeros((len(f.persons), 5))
        fr = _frac(rng, 4 * len(f.persons)).reshape(-1, 4)
        for k, p in enumerate(f.persons):
            x1, y1, x2, y2 = p.box
            # sub-pixel coordinates; a person cut by the left border gets a slightly
            # negative x, as in the real annotations (e.g. -1.7030)
            x = x1 + fr[k, 0] if x1 >= 0 else -(1 + fr[k, 0] * 1.5)
            y = max(y1, 0) + fr[k, 1]
            w = min(x2, W) - x - 1 + fr[k, 2]
            h = min(y2, H) - y - 1 + fr[k, 3]
            r[k] = (pid[p.identity] if p.identity >= 0 else -2, x, y, max(w, 1.5), max(h, 1.5))
        rows[f.index] = r
    # queries: one per camera in which a test identity appears (≥ 2 cameras)
    queries = []
    for ident in test_ids:
        choice = _query_choice(world, ident)
        if len(choice) < 2:
            continue
        for cam, (f, k) in choice.items():
            queries.append((pid[ident], f, k))
    # three queries whose width rounds across an integer in query_info.txt (the real
    # c5s2_042630 / c5s2_082752 / c5s2_120599 cases): annotation w = n - 0.00003
    fixed = rng.choice(len(queries), size=min(3, len(queries)), replace=False)
    for q in fixed:
        _, f, k = queries[q]
        w = rows[f.index][k, 3]
        rows[f.index][k, 3] = max(2.0, float(np.round(w))) - 0.00003
    os.makedirs(out, exist_ok=True)
    for f in world.frames:
        _write_jpeg(osp.join(out, 'frames', names[f.index] + '.jpg'), f.jpeg)
        key = PRW_KEYS[int(rng.choice(3, p=PRW_KEY_PROBS))]
        save_mat(osp.join(out, 'annotations', names[f.index] + '.jpg.mat'), key,
                 rows[f.index])
    for split in ('train', 'test'):
        split_names = sorted(names[f.index] for f in world.split_frames(split))
        save_mat(osp.join(out, f'frame_{split}.mat'), f'img_index_{split}',
                 cell_column(split_names))
    save_mat(osp.join(out, 'ID_train.mat'), 'ID_train', mat_num(sorted(pid[i] for i in train_ids)))
    save_mat(osp.join(out, 'ID_test.mat'), 'ID_test2', mat_num(sorted(pid[i] for i in test_ids)))
    lines = []
    os.makedirs(osp.join(out, 'query_box'), exist_ok=True)
    import cv2
    for p_, f, k in queries:
        _, x, y, w, h = rows[f.index][k]
        lines.append('%d %.4f %.4f %.4f %.4f %s\r\n' % (p_, x, y, w, h, names[f.index]))
        img = cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR)
        x0, y0 = max(int(x), 0), max(int(y), 0)
        crop = img[y0:int(y + h), x0:int(x + w)]
        if crop.size:
            cv2.imwrite(osp.join(out, 'query_box', f'{p_}_{names[f.index]}.jpg'), crop)
    with open(osp.join(out, 'query_info.txt'), 'wb') as fh:
        fh.write(''.join(lines).encode('ascii'))
    return dict(layout='prw', frames=len(world.frames),
                train_frames=len(world.split_frames('train')),
                test_frames=len(world.split_frames('test')), train_ids=len(train_ids),
                test_ids=len(test_ids), queries=len(queries), query_box_fixes=len(fixed),
                boxes=sum(len(r) for r in rows.values()),
                unlabelled=int(sum((r[:, 0] == -2).sum() for r in rows.values())))


# ----------------------------------------------------------------------------- CUHK
def _cuhk_box(p, size) -> List[int]:
    W, H = size
    x1, y1 = max(0, p.box[0]), max(0, p.box[1])
    x2, y2 = min(W, p.box[2]), min(H, p.box[3])
    return [int(x1), int(y1), int(x2 - x1), int(y2 - y1)]


def write_cuhk(world: SyntheticWorld, out: str) -> dict:
    """Write ``Image/SSM/`` and ``annotation/`` (Images, pool, Person, Train, TestG*,
    Occlusion, Resolution) under ``out``."""
    cfg = world.config
    rng = np.random.default_rng([world.seed, 11])
    n = len(world.frames)
    ks = rng.choice(np.arange(1, 3 * n + 20), size=n, replace=False)
    name = {f.index: f's{int(k)}.jpg' for f, k in zip(world.frames, ks)}
    ids = rng.choice(np.arange(1, 4 * len(world.identities) + 20), len(world.identities),
                     replace=False)
    idname = {i.index: f'p{int(k)}' for i, k in zip(world.identities, ids)}
    hard = {}
    for f in world.frames:
        for k in range(len(f.persons)):
            hard[(f.index, k)] = int(rng.random() < 0.05)
    ann = osp.join(out, 'annotation')
    for f in world.frames:
        _write_jpeg(osp.join(out, 'Image', 'SSM', name[f.index]), f.jpeg)
    # Images.mat (shuffled order; one zero-width box, as the real file has degenerate ones)
    degenerate = next(f.index for f in world.frames if f.split == 'train')
    recs = []
    for f in [world.frames[i] for i in rng.permutation(n)]:
        boxes = [(mat_num(_cuhk_box(p, f.size)), mat_num([[hard[(f.index, k)]]]))
                 for k, p in enumerate(f.persons)]
        if f.index == degenerate:
            b = _cuhk_box(f.persons[0], f.size)
            boxes.append((mat_num([b[0], b[1], 0, b[3]]), mat_num([[0]])))
        recs.append((name[f.index], mat_num([[len(boxes)]]),
                     struct_row(('idlocate', 'ishard'), boxes)))
    save_matlab(osp.join(ann, 'Images.mat'), 'Img', struct_row(('imname', 'nAppear', 'box'), recs))
    test_frames = world.split_frames('test')
    pool = [name[f.index] for f in (test_frames[i] for i in rng.permutation(len(test_frames)))]
    save_matlab(osp.join(ann, 'pool.mat'), 'pool', cell_column(pool))

    def scenes(ident, split=None):
        apps = [(f, k) for f, k in world.appearances(ident) if split is None or f.split == split]
        return struct_row(('imname', 'idlocate', 'ishard'),
                          [(name[f.index], mat_num(_cuhk_box(f.persons[k], f.size)),
                            mat_num([[hard[(f.index, k)]]])) for f, k in apps]), len(apps)

    persons, train_cells = [], []
    for ident in world.identities:
        sc, cnt = scenes(ident.index)
        persons.append((idname[ident.index], mat_num([[cnt]]), sc))
        if ident.split == 'train':
            sc, cnt = scenes(ident.index, 'train')
            train_cells.append(struct_row(('idname', 'nAppear', 'scene'),
                                          [(idname[ident.index], mat_num([[cnt]]), sc)]))
    save_matlab(osp.join(ann, 'Person.mat'), 'Person',
             struct_row(('idname', 'nAppear', 'scene'), persons))
    save_matlab(osp.join(ann, 'test', 'train_test', 'Train.mat'), 'Train',
             cell_column(train_cells))
    queries = _cuhk_queries(world, rng, name, pool)
    entry = (lambda f, k: (name[f.index], mat_num(_cuhk_box(f.persons[k], f.size)),
                           mat_num([[hard[(f.index, k)]]])))
    galleries = {}
    for size in cfg.gallery_sizes:
        rows = []
        for qi, (ident, (f, k), pos, neg) in enumerate(queries):
            gal = [entry(pf, pk) for pf, pk in pos]
            if cfg.quirks and qi == 0:  # own image listed, same box (real query 2132)
                gal.append(entry(f, k))
            gal += [(g, mat_empty(), mat_empty()) for g in neg]
            if len(gal) < size:
                raise ValueError(f'gallery size {size} needs more test images than the '
                                 f'{len(pool)} generated (num_test_frames)')
            gal = gal[:size]
            if cfg.quirks and qi == 1:  # a gallery image listed twice (real query 1250)
                gal[-1] = gal[len(pos)]
            query = struct_row(('imname', 'idlocate', 'ishard', 'idname'),
                               [entry(f, k) + (idname[ident], )])
            rows.append((query, struct_row(('imname', 'idlocate', 'ishard'), gal)))
            galleries[(size, qi)] = gal
        save_matlab(osp.join(ann, 'test', 'train_test', f'TestG{size}.mat'), f'TestG{size}',
                 struct_row(('Query', 'Gallery'), rows))
    # subsets: the most occluded queries and the smallest queries, galleries of ≤ 100
    sub_size = max([s for s in cfg.gallery_sizes if s <= 100] or [min(cfg.gallery_sizes)])
    vis = np.array([f.persons[k].visible for _, (f, k), _, _ in queries])
    hgt = np.array([f.persons[k].height for _, (f, k), _, _ in queries])
    n_sub = max(2, len(queries) // 6)
    occl = sorted(np.argsort(vis, kind='stable')[:n_sub].tolist())
    small = sorted(np.argsort(hgt, kind='stable')[:n_sub].tolist())
    for fname, var, sel, extra in (('Occlusion.mat', 'Occlusion1', occl, True),
                                   ('Resolution.mat', 'Test_Size', small, False)):
        rows = []
        for qi in sel:
            ident, (f, k), _, _ = queries[qi]
            query = struct_row(('imname', 'idlocate', 'ishard', 'idname'),
                               [entry(f, k) + (idname[ident], )])
            gal = struct_row(('imname', 'idlocate', 'ishard'), galleries[(sub_size, qi)])
            rows.append((query, gal, mat_num([[1]])) if extra else (query, gal))
        fields = ('Query', 'Gallery', 'occlusion') if extra else ('Query', 'Gallery')
        save_matlab(osp.join(ann, 'test', 'subset', fname), var, struct_row(fields, rows))
    return dict(layout='cuhk', images=n, train_images=n - len(pool), test_images=len(pool),
                train_persons=len(train_cells), queries=len(queries),
                gallery_sizes=list(cfg.gallery_sizes), occlusion=len(occl),
                resolution=len(small), degenerate_boxes=1)


def _cuhk_queries(world: SyntheticWorld, rng, name, pool):
    """(identity, query appearance, positive appearances, negative image names) per
    test identity; negatives are one permutation, so TestG50 ⊂ TestG100 ⊂ …"""
    out = []
    for ident in (i.index for i in world.identities if i.split == 'test'):
        apps = [(f, k) for f, k in world.appearances(ident) if f.split == 'test']
        if len(apps) < 2:
            continue
        q = max(range(len(apps)), key=lambda j: (min(apps[j][0].persons[apps[j][1]].visible,
                                                     0.6), apps[j][0].persons[apps[j][1]].height,
                                                 -j))
        qf, qk = apps[q]
        pos = [a for j, a in enumerate(apps) if j != q]
        pos = [pos[j] for j in rng.permutation(len(pos))]
        holding = {name[f.index] for f, _ in apps}
        neg = [pool[j] for j in rng.permutation(len(pool)) if pool[j] not in holding]
        out.append((ident, (qf, qk), pos, neg))
    return out


# ----------------------------------------------------------------------------- COCO
def write_coco(world: SyntheticWorld, out: str) -> dict:
    """Write ``train2017/``, ``val2017/`` and ``annotations/instances_{train,val}2017.json``
    under ``out`` (COCO layout, read by :class:`COCOPersonsDataset`): every drawn person is
    a ``person`` box (``iscrowd`` 0) with no identity label, and the training frames go to
    ``train2017``, the test frames to ``val2017``."""
    summary = {}
    ann_id = 1
    for split, folder in (('train', 'train2017'), ('test', 'val2017')):
        images, anns = [], []
        for f in world.split_frames(split):
            img_id = f.index + 1
            name = f'{img_id:012d}.jpg'
            _write_jpeg(osp.join(out, folder, name), f.jpeg)
            W, H = f.size
            images.append(dict(id=img_id, file_name=name, width=W, height=H))
            for p in f.persons:
                x, y, w, h = _cuhk_box(p, f.size)
                if w <= 0 or h <= 0 or p.visible <= 0:
                    continue
                anns.append(dict(id=ann_id, image_id=img_id, category_id=1,
                                 bbox=[float(x), float(y), float(w), float(h)],
                                 area=float(w * h), iscrowd=0))
                ann_id += 1
        coco = dict(info=dict(description=f'mmpsearch synthetic COCO persons, seed '
                                          f'{world.seed}'),
                    images=images, annotations=anns,
                    categories=[dict(id=1, name='person', supercategory='person')])
        os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
        with open(osp.join(out, 'annotations', f'instances_{folder}.json'), 'w') as fh:
            json.dump(coco, fh)
        summary[f'{split}_images'] = len(images)
        summary[f'{split}_boxes'] = len(anns)
    return summary
