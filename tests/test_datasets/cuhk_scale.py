# Copyright (c) mmpsearch contributors. All rights reserved.
"""A CUHK-SYSU raw tree at any scale, for load-time tests and the full-scale benchmark.

Run as a script to time the test split at the real scale (6,978 pool images, 2,900 queries,
TestG50…TestG4000, Occlusion 187, Resolution 290)::

    python tests/test_datasets/cuhk_scale.py --out /tmp/cuhk_full

Boxes, persons and galleries are random but consistent (every query and positive gallery
box is an annotated box of its image); the files have the real ``loadmat`` structure and
the byte-level encoding of the original files (raw_formats.md "Byte-level encoding": one
compressed variable, zero-byte empty elements, class double with uint8/uint16 data,
UTF-8 characters; :mod:`mmpsearch.datasets._mat_writer`).
"""
import argparse
import os
import os.path as osp
import resource
import sys
import time

import cv2
import numpy as np

if __package__ in (None, ''):  # run as a script
    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    import mat_bytes as mb  # noqa: E402
else:
    from . import mat_bytes as mb

from mmpsearch.datasets import _mat_writer as mw  # noqa: E402

FULL = dict(n_pool=6978, n_train=11206, n_queries=2900, n_train_persons=5532,
            gallery_sizes=(50, 100, 500, 1000, 2000, 4000), n_occlusion=187,
            n_resolution=290, boxes_per_image=6)


def write_tree(root, n_pool, n_train, n_queries, n_train_persons, gallery_sizes,
               n_occlusion, n_resolution, boxes_per_image=6, seed=0, size=(800, 600)):
    """Write ``Image/SSM`` (pool images only) and ``annotation/``; return the expected
    gallery lists {size: (Q, N) image names} and query image names."""
    rng = np.random.default_rng(seed)
    n_img = n_pool + n_train
    ks = rng.choice(np.arange(1, 2 * n_img), n_img, replace=False)
    names = [f's{int(k)}.jpg' for k in ks]
    pool, train = names[:n_pool], names[n_pool:]
    W, H = size
    nbox = rng.integers(max(2, boxes_per_image - 3), boxes_per_image + 4, n_img)
    boxes = {}
    for n, c in zip(names, nbox):
        x = rng.integers(0, W - W // 5, c)
        y = rng.integers(0, H // 2, c)
        boxes[n] = np.stack([x, y, rng.integers(W // 40, W // 6, c),
                             rng.integers(H // 12, H // 2, c)], 1)
    ann = osp.join(root, 'annotation')
    os.makedirs(osp.join(ann, 'test', 'train_test'), exist_ok=True)
    os.makedirs(osp.join(ann, 'test', 'subset'), exist_ok=True)
    recs = []
    for n in names:
        kids = []
        for b in boxes[n]:
            kids += [mw.double_element(b), mw.double_element([0])]
        recs += [mw.char_element(n), mw.double_element([len(boxes[n])]),
                 mw.struct_element(('idlocate', 'ishard'), (1, len(boxes[n])), kids)]
    mw.write_matlab_file(osp.join(ann, 'Images.mat'), mw.struct_element(
        ('imname', 'nAppear', 'box'), (1, n_img), recs, b'Img'))
    mw.write_matlab_file(osp.join(ann, 'pool.mat'), mw.cell_element(
        (n_pool, 1), [mw.char_element(n) for n in pool], b'pool'))
    cells = []
    for t in range(n_train_persons):
        imgs = rng.choice(n_train, 2, replace=False)
        scene = []
        for i in imgs:
            n = train[i]
            scene += [mw.char_element(n), mw.double_element(boxes[n][0]),
                      mw.double_element([0])]
        person = mw.struct_element(('idname', 'nAppear', 'scene'), (1, 1), [
            mw.char_element(f'p{t + 1}'), mw.double_element([2]),
            mw.struct_element(('imname', 'idlocate', 'ishard'), (1, 2), scene)])
        cells.append(person)
    mw.write_matlab_file(osp.join(ann, 'test', 'train_test', 'Train.mat'),
                         mw.cell_element((n_train_persons, 1), cells, b'Train'))
    queries, expected = [], {}
    used = {n: 0 for n in pool}  # each annotated box belongs to one test person

    def take(n):
        k = used[n]
        used[n] += 1
        return boxes[n][k].tolist()

    for q in range(n_queries):
        npos = int(rng.integers(1, 14))
        idx = rng.permutation(n_pool)
        free = [i for i in idx[:4 * (npos + 1)] if used[pool[i]] < len(boxes[pool[i]])]
        own, pos_imgs = pool[free[0]], [pool[i] for i in free[1:1 + npos]]
        pos = [(n, take(n), 0) for n in pos_imgs]
        taken = {own, *pos_imgs}
        neg = [(pool[i], None, 0) for i in idx if pool[i] not in taken][
            :max(gallery_sizes) - len(pos)]
        queries.append(dict(imname=own, box=take(own), hard=0, idname=f'p{10000 + q}',
                            gallery=pos + neg))
    for g in gallery_sizes:
        qs = [dict(q, gallery=q['gallery'][:g]) for q in queries]
        mb.query_gallery_file(osp.join(ann, 'test', 'train_test', f'TestG{g}.mat'),
                              f'TestG{g}', qs, encoding='matlab')
        expected[g] = [[n for n, _, _ in q['gallery']] for q in qs]
    sub = 100 if 100 in gallery_sizes else min(gallery_sizes)
    for fname, var, n, extra in (('Occlusion.mat', 'Occlusion1', n_occlusion, 'occlusion'),
                                 ('Resolution.mat', 'Test_Size', n_resolution, None)):
        sel = sorted(rng.choice(n_queries, n, replace=False).tolist())
        qs = [dict(queries[i], gallery=queries[i]['gallery'][:sub]) for i in sel]
        mb.query_gallery_file(osp.join(ann, 'test', 'subset', fname), var, qs,
                              extra_field=extra, encoding='matlab')
    img_dir = osp.join(root, 'Image', 'SSM')
    os.makedirs(img_dir, exist_ok=True)
    jpeg = cv2.imencode('.jpg', np.full((H, W, 3), 120, np.uint8))[1].tobytes()
    for n in pool:
        with open(osp.join(img_dir, n), 'wb') as f:
            f.write(jpeg)
    return expected, [q['imname'] for q in queries]


def main():
    parser = argparse.ArgumentParser(description='time CUHK-SYSU test-split loading at '
                                     'full scale')
    parser.add_argument('--out', required=True)
    parser.add_argument('--skip-write', action='store_true')
    args = parser.parse_args()
    if not args.skip_write:
        start = time.time()
        write_tree(args.out, **FULL)
        print(f'wrote the full-scale tree in {time.time() - start:.1f} s')
    import mmpsearch  # noqa: F401
    from mmpsearch.datasets import CUHKSYSUDataset
    for protocols in (['G100'], None):
        start, cpu = time.time(), time.process_time()
        ds = CUHKSYSUDataset(data_root=args.out, split='test', test_mode=True,
                             protocols=protocols)
        wall, cpu = time.time() - start, time.process_time() - cpu
        sp = ds.metainfo['search_protocol']
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f'protocols={protocols or "all"}: {len(ds)} images, '
              f'{len(sp["query_person_ids"])} queries, '
              f'{sorted(sp["protocols"])}: {wall:.1f} s wall, {cpu:.1f} s CPU '
              f'(peak RSS so far {rss:.2f} GB)')


if __name__ == '__main__':
    main()
