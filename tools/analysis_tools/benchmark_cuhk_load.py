# Copyright (c) mmpsearch contributors. All rights reserved.
"""Time loading the CUHK-SYSU test split at the real scale from MATLAB-encoded files.

Example::

    python tools/analysis_tools/benchmark_cuhk_load.py --out /tmp/cuhk_full
    python tools/analysis_tools/benchmark_cuhk_load.py --out /tmp/cuhk_full --skip-write \\
        --scipy G100 G500 --real-testg100 ../shared/real/cuhk_sysu/TestG100.mat

It writes (unless ``--skip-write``) a raw CUHK-SYSU tree at the real scale: 6,978 pool
images, 11,206 training images, 2,900 queries, ``TestG50`` … ``TestG4000`` (22.2 million
gallery entries), ``Occlusion.mat`` (187 queries) and ``Resolution.mat`` (290), plus
``Images.mat``, ``pool.mat`` and ``Train.mat``. Every file is encoded as MATLAB encoded the
original files (``mmpsearch.datasets._mat_writer``, byte-identical on the original
``TestG100.mat``): one compressed variable, zero-byte elements for absent persons, class
double with uint8/uint16 data by value range, UTF-8 names. Boxes and galleries are random
but consistent (each query and positive gallery box is an annotated box of its image).

Each measurement then runs in a fresh interpreter, so that its peak resident memory is its
own (``VmHWM``; the imports alone, torch included, take about 0.4 GB and are shown apart):

* ``dataset G100`` / ``dataset all``: ``CUHKSYSUDataset(split='test')`` with the G100
  protocol only (the in-loop validation) and with all eight protocol files;
* ``fast <file>`` / ``scipy <file>``: one protocol file through the vectorised reader and
  through ``scipy.io.loadmat`` (``--scipy``: which files; scipy needs about 2 s and a few
  hundred MB per 290,000 gallery entries, so TestG4000 alone takes minutes and gigabytes:
  ``--mem-limit-gb`` caps each child's address space);
* ``--real-testg100 PATH``: the same two readers on an original ``TestG100.mat``.

Results are printed as a table and, with ``--json``, written to a file. ``--in-process``
runs every measurement in this interpreter instead (quick, but peak memory is then
cumulative).
"""
import argparse
import json
import os
import os.path as osp
import resource
import shutil
import subprocess
import sys
import tempfile
import time

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, _REPO)

import numpy as np  # noqa: E402

from mmpsearch.datasets import _mat as _mat  # noqa: E402
from mmpsearch.datasets import _mat_writer as mw  # noqa: E402

PRESETS = {
    # the real CUHK-SYSU test split (raw_formats.md §2.2)
    'full': dict(n_pool=6978, n_train=11206, n_queries=2900, n_train_persons=5532,
                 gallery_sizes=(50, 100, 500, 1000, 2000, 4000), n_occlusion=187,
                 n_resolution=290, boxes_per_image=6),
    # a quick run of the same code (the tool's own test)
    'tiny': dict(n_pool=260, n_train=30, n_queries=40, n_train_persons=6,
                 gallery_sizes=(50, 100, 200), n_occlusion=5, n_resolution=6,
                 boxes_per_image=4),
}
PROTOCOL_FILES = {'Occlusion': ('test/subset/Occlusion.mat', 'Occlusion1'),
                  'Resolution': ('test/subset/Resolution.mat', 'Test_Size')}


# ------------------------------------------------------------------------ the file tree
def _query_gallery(path, var_name, queries, extra_field=None):
    """A TestG-style file, MATLAB-encoded, caching the bytes of repeated leaves."""
    names, boxes = {}, {}
    hard = {0: mw.double_element([[0]]), 1: mw.double_element([[1]])}
    qfields, gfields = ('imname', 'idlocate', 'ishard', 'idname'), ('imname', 'idlocate',
                                                                    'ishard')
    children = []
    for q in queries:
        children.append(mw.struct_element(qfields, (1, 1), [
            mw.char_element(q['imname']), mw.double_element(q['box']), hard[q['hard']],
            mw.char_element(q['idname'])]))
        parts = []
        for name, box, h in q['gallery']:
            if name not in names:
                names[name] = mw.char_element(name)
            parts.append(names[name])
            if box is None:  # the person is not in this image
                parts += [mw.ZERO_BYTE_ELEMENT, mw.ZERO_BYTE_ELEMENT]
            else:
                key = tuple(box)
                if key not in boxes:
                    boxes[key] = mw.double_element(box)
                parts += [boxes[key], hard[h]]
        children.append(mw.struct_element(gfields, (1, len(q['gallery'])), parts))
        if extra_field:
            children.append(hard[1])
    fields = ('Query', 'Gallery') + ((extra_field, ) if extra_field else ())
    mw.write_matlab_file(path, mw.struct_parts(fields, (1, len(queries)), children,
                                               var_name.encode('ascii')))


def write_tree(root, n_pool, n_train, n_queries, n_train_persons, gallery_sizes,
               n_occlusion, n_resolution, boxes_per_image=6, seed=0, size=(800, 600)):
    """Write ``Image/SSM`` (pool images only) and ``annotation/`` under ``root``.

    Returns:
        tuple: the gallery lists ``{size: [[image name, ...] per query]}`` and the query
        image names, in file order.
    """
    import cv2
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
        scene = []
        for i in rng.choice(n_train, 2, replace=False):
            n = train[i]
            scene += [mw.char_element(n), mw.double_element(boxes[n][0]),
                      mw.double_element([0])]
        cells.append(mw.struct_element(('idname', 'nAppear', 'scene'), (1, 1), [
            mw.char_element(f'p{t + 1}'), mw.double_element([2]),
            mw.struct_element(('imname', 'idlocate', 'ishard'), (1, 2), scene)]))
    mw.write_matlab_file(osp.join(ann, 'test', 'train_test', 'Train.mat'),
                         mw.cell_element((n_train_persons, 1), cells, b'Train'))
    queries, expected = [], {}
    used = {n: 0 for n in pool}  # each annotated box belongs to one test person

    def take(n):
        used[n] += 1
        return boxes[n][used[n] - 1].tolist()

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
        _query_gallery(osp.join(ann, 'test', 'train_test', f'TestG{g}.mat'), f'TestG{g}', qs)
        expected[g] = [[n for n, _, _ in q['gallery']] for q in qs]
    sub = 100 if 100 in gallery_sizes else min(gallery_sizes)
    for fname, var, n, extra in (('Occlusion.mat', 'Occlusion1', n_occlusion, 'occlusion'),
                                 ('Resolution.mat', 'Test_Size', n_resolution, None)):
        sel = sorted(rng.choice(n_queries, n, replace=False).tolist())
        qs = [dict(queries[i], gallery=queries[i]['gallery'][:sub]) for i in sel]
        _query_gallery(osp.join(ann, 'test', 'subset', fname), var, qs, extra_field=extra)
    img_dir = osp.join(root, 'Image', 'SSM')
    os.makedirs(img_dir, exist_ok=True)
    jpeg = cv2.imencode('.jpg', np.full((H, W, 3), 120, np.uint8))[1].tobytes()
    for n in pool:
        with open(osp.join(img_dir, n), 'wb') as f:
            f.write(jpeg)
    return expected, [q['imname'] for q in queries]


# ------------------------------------------------------------------------ measurements
def _protocol_file(root, protocol):
    if protocol in PROTOCOL_FILES:
        rel, var = PROTOCOL_FILES[protocol]
        return osp.join(root, 'annotation', rel), var
    return osp.join(root, 'annotation', 'test', 'train_test',
                    f'TestG{protocol[1:]}.mat'), f'TestG{protocol[1:]}'


def _measure(kind, root, target):
    """Run one measurement in this process; returns its result dict."""
    from mmpsearch.datasets import CUHKSYSUDataset, _mat_protocol
    from mmpsearch.datasets._mat_stream import read_fast
    if kind == 'dataset':
        def no_fallback(path, *args):
            raise RuntimeError(f'{path}: the vectorised reader fell back to scipy')

        scipy_reader = _mat_protocol._read_scipy
        _mat_protocol._read_scipy = no_fallback  # every file must take the fast path
        try:
            rss_before = _peak_rss_gb()
            start, cpu = time.perf_counter(), time.process_time()
            ds = CUHKSYSUDataset(data_root=root, split='test', test_mode=True,
                                 protocols=None if target == 'all' else target.split(','))
        finally:
            _mat_protocol._read_scipy = scipy_reader
        sp = ds.metainfo['search_protocol']
        info = dict(images=len(ds), queries=len(sp['query_person_ids']),
                    protocols=sorted(sp['protocols']), reader='fast',
                    gallery_entries=int(sum(p['gallery_image_idx'].size
                                            for p in sp['protocols'].values())))
    else:
        if osp.isfile(target):  # an original file: its own names are the test images
            path, var_names = target, None
            names = sorted(_listed_names(path))
        else:
            path, var = _protocol_file(root, target)
            var_names = [var]
            pool = osp.join(root, 'annotation', 'pool.mat')
            names = [_mat.mat_str(v, pool, 'pool') for v in _mat.cell_items(
                _mat.get_var(_mat.load_mat(pool), pool, ['pool']), pool, 'pool')]
        index = _mat_protocol.NameIndex(names)
        rss_before = _peak_rss_gb()
        start, cpu = time.perf_counter(), time.process_time()
        if kind == 'fast':
            table = read_fast(path, var_names, index)  # raises instead of falling back
        else:
            table = _mat_protocol.read_protocol_mat(path, var_names, index, fast=False)
        info = dict(file=osp.basename(path), queries=len(table.query_names),
                    gallery_entries=int(table.gallery_image_idx.size),
                    positives=int(table.pos_query.size), reader=table.reader,
                    unknown_names=len(table.unknown_names))
    info.update(wall_s=time.perf_counter() - start, cpu_s=time.process_time() - cpu,
                peak_rss_gb=_peak_rss_gb(), rss_before_gb=rss_before)
    return info


def _peak_rss_gb():
    """This interpreter's peak resident memory (GB).

    ``VmHWM`` belongs to the process image, so a child started by this tool does not
    inherit the tool's own peak (Linux's ``ru_maxrss`` keeps it across ``exec``).
    """
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _listed_names(path):
    """Every image name a protocol file lists (read with the vectorised reader)."""
    from mmpsearch.datasets._mat_stream import read_fast
    seen = set()

    class Collect:
        def lookup_keys(self, words):
            seen.update(k.tobytes().rstrip(b'\0').decode('utf-8') for k in words)
            return np.zeros(words.shape[0], np.int64)

    read_fast(path, None, Collect())
    return seen


def _child(kind, root, target, mem_limit_gb):
    """Run a measurement in a fresh interpreter (its own peak memory)."""
    cmd = [sys.executable, osp.abspath(__file__), '--measure', kind, target,
           '--out', root or '', '--mem-limit-gb', str(mem_limit_gb)]
    env = dict(os.environ, PYTHONPATH=_REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith('RESULT '):
            return json.loads(line[len('RESULT '):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return dict(error=f'exit {proc.returncode}: ' + ' | '.join(tail))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Time CUHK-SYSU test-split loading from '
                                     'MATLAB-encoded files at the real scale')
    parser.add_argument('--out', help='the tree (default: a temporary folder, removed '
                        'afterwards)')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='full')
    parser.add_argument('--skip-write', action='store_true', help='reuse the tree in --out')
    parser.add_argument('--files', nargs='*', metavar='PROTOCOL',
                        help='protocol files to time one by one with the vectorised reader '
                        '(default: all eight)')
    parser.add_argument('--scipy', nargs='*', default=['G100'], metavar='PROTOCOL',
                        help='protocol files to read with scipy too (G50 … G4000, '
                        'Occlusion, Resolution, or "all"; none: no scipy run)')
    parser.add_argument('--real-testg100', help='an original TestG100.mat to time as well')
    parser.add_argument('--mem-limit-gb', type=float, default=6.0,
                        help='address-space cap of each measurement (0: none)')
    parser.add_argument('--in-process', action='store_true',
                        help='measure in this interpreter (quick; peak memory is then '
                        'cumulative, not per measurement)')
    parser.add_argument('--json', help='write the results to this file')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--measure', nargs=2, metavar=('KIND', 'TARGET'), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.measure:
        if args.mem_limit_gb > 0:
            cap = int(args.mem_limit_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        print('RESULT ' + json.dumps(_measure(args.measure[0], args.out, args.measure[1])))
        return None
    preset = PRESETS[args.preset]
    root = args.out or tempfile.mkdtemp(prefix='cuhk_load_')
    results = dict(preset=args.preset, root=root, load_average=os.getloadavg(), runs=[])
    try:
        if not args.skip_write:
            start = time.perf_counter()
            write_tree(root, seed=args.seed, **preset)
            results['write_s'] = time.perf_counter() - start
            results['write_peak_rss_gb'] = _peak_rss_gb()
            print(f'wrote the {args.preset} tree under {root} in {results["write_s"]:.1f} s '
                  f'(peak RSS {results["write_peak_rss_gb"]:.2f} GB)')
        files = [f'G{g}' for g in preset['gallery_sizes']] + list(PROTOCOL_FILES)
        scipy_files = files if args.scipy == ['all'] else args.scipy
        plan = [('dataset', 'G100' if 100 in preset['gallery_sizes'] else files[0]),
                ('dataset', 'all')]
        plan += [('fast', f) for f in (files if args.files is None else args.files)]
        plan += [('scipy', f) for f in scipy_files]
        if args.real_testg100:
            plan += [('fast', osp.abspath(args.real_testg100)),
                     ('scipy', osp.abspath(args.real_testg100))]
        for kind, target in plan:
            res = (_measure(kind, root, target) if args.in_process else
                   _child(kind, root, target, args.mem_limit_gb))
            res.update(kind=kind, target=osp.basename(target) if osp.isabs(target) else target)
            results['runs'].append(res)
            _print(res)
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return results


def _print(res):
    what = f'{res["kind"]:7s} {res["target"]:14s}'
    if 'error' in res:
        print(f'{what} FAILED ({res["error"]})')
        return
    size = res.get('gallery_entries', 0)
    print(f'{what} {res["wall_s"]:7.1f} s wall {res["cpu_s"]:7.1f} s CPU '
          f'{res["peak_rss_gb"]:5.2f} GB peak RSS (imports {res["rss_before_gb"]:.2f})'
          f' {size:>11,d} gallery entries  reader={res["reader"]}')
    sys.stdout.flush()


if __name__ == '__main__':
    main()
