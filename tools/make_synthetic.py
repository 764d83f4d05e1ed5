# Copyright (c) mmpsearch contributors. All rights reserved.
"""Write the synthetic person-search data set in the PRW or CUHK-SYSU raw layout.

Examples:
    python tools/make_synthetic.py --out data/synthetic_prw --layout prw --seed 0
    python tools/make_synthetic.py --out data/synthetic_cuhk --layout cuhk --seed 0 \\
        --num-train-frames 600 --num-test-frames 200
    python tools/make_synthetic.py --out data/synthetic_coco --layout coco --seed 0
    python tools/make_synthetic.py --out data/synthetic_prw --layout prw --skip-existing \\
        --preview docs/images/synthetic_prw.png

The set is written to a temporary folder and moved into place when complete, with a
``synthetic.json`` stamp (configuration, seed, counts); ``--skip-existing`` keeps a set
whose stamp matches the request. The real loaders (``PRWDataset``, ``CUHKSYSUDataset``,
``COCOPersonsDataset``) read the result; see docs/datasets.md.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import sys
import time
from dataclasses import asdict

_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):  # a checkout, not mim's copy
    sys.path.insert(0, _REPO)

import mmpsearch  # noqa: E402,F401

STAMP = 'synthetic.json'


def parse_args(argv=None):
    from mmpsearch.datasets.synthetic import SyntheticConfig
    d = SyntheticConfig()
    p = argparse.ArgumentParser(description='Generate the synthetic person-search set')
    p.add_argument('--out', required=True, help='output root folder')
    p.add_argument('--layout', choices=('prw', 'cuhk', 'coco'), default='prw',
                   help='coco: unlabelled people for pre-training (COCO instances layout)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num-train-frames', type=int, default=d.num_train_frames)
    p.add_argument('--num-test-frames', type=int, default=d.num_test_frames)
    p.add_argument('--num-train-ids', type=int, default=d.num_train_ids)
    p.add_argument('--num-test-ids', type=int, default=d.num_test_ids)
    p.add_argument('--num-cameras', type=int, default=d.num_cameras)
    p.add_argument('--image-size', type=int, nargs=2, default=list(d.image_size),
                   metavar=('W', 'H'))
    p.add_argument('--gallery-sizes', type=int, nargs='+', default=list(d.gallery_sizes),
                   help='CUHK layout: TestG<N>.mat files to write')
    p.add_argument('--prw-pids', choices=('dense', 'real'), default=d.prw_pids,
                   help="PRW layout: identity numbering; 'real' uses the real PRW's ids "
                   '(training ids 483 and 932, test id 479), which the label maps treat '
                   'specially')
    p.add_argument('--skip-existing', action='store_true',
                   help='do nothing if OUT already holds this exact set')
    p.add_argument('--overwrite', action='store_true', help='replace an existing OUT')
    p.add_argument('--preview', metavar='PNG',
                   help='also draw a few test frames with their boxes and ids')
    p.add_argument('--preview-frames', type=int, default=6)
    return p.parse_args(argv)


def _config(args):
    from mmpsearch.datasets.synthetic import SyntheticConfig
    return SyntheticConfig(
        image_size=tuple(args.image_size), num_cameras=args.num_cameras,
        num_train_frames=args.num_train_frames, num_test_frames=args.num_test_frames,
        num_train_ids=args.num_train_ids, num_test_ids=args.num_test_ids,
        gallery_sizes=tuple(args.gallery_sizes), prw_pids=args.prw_pids)


def _request(args, cfg) -> dict:
    config = asdict(cfg)
    if config['prw_pids'] == 'dense':  # the default: stamps written before it still match
        del config['prw_pids']
    return dict(layout=args.layout, seed=args.seed, config=config,
                version=mmpsearch.__version__)


def generate(args) -> dict:
    """Generate (or keep) the set; returns the stamp."""
    from mmpsearch.datasets.synthetic import make_synthetic
    cfg = _config(args)
    request = _request(args, cfg)
    stamp_path = osp.join(args.out, STAMP)
    if osp.isdir(args.out) and os.listdir(args.out):
        old = None
        if osp.isfile(stamp_path):
            with open(stamp_path) as f:
                old = json.load(f)
        same = old is not None and {k: old.get(k) for k in request} == json.loads(
            json.dumps(request))
        if args.skip_existing and same:
            print(f'{args.out}: the requested synthetic set exists; skipped')
            return old
        if not args.overwrite:
            why = ('holds a different synthetic set' if old else 'is not empty')
            raise SystemExit(f'make_synthetic: {args.out} {why}; pass --overwrite to replace '
                             'it or choose another --out')
    tmp = args.out.rstrip('/') + f'.tmp{os.getpid()}'
    shutil.rmtree(tmp, ignore_errors=True)
    start = time.time()
    try:
        summary = make_synthetic(tmp, layout=args.layout, seed=args.seed, config=cfg)
        stamp = dict(request, summary=summary, seconds=round(time.time() - start, 1))
        with open(osp.join(tmp, STAMP), 'w') as f:
            json.dump(stamp, f, indent=1)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if osp.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    os.replace(tmp, args.out)
    print(f'{args.out}: {json.dumps(summary)} ({stamp["seconds"]} s)')
    return stamp


def draw_preview(root: str, layout: str, out_png: str, num_frames: int = 6) -> None:
    """A grid of test frames with every annotated box (colour per identity, grey for
    unlabelled people) and the query boxes (thick, marked Q), read by the real loader."""
    import cv2
    import numpy as np

    from mmpsearch.datasets import CUHKSYSUDataset, PRWDataset
    from mmpsearch.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cls = PRWDataset if layout == 'prw' else CUHKSYSUDataset
    ds = cls(data_root=root, split='test', test_mode=True, serialize_data=False)
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    # frames with a query and several people, from different cameras
    infos.sort(key=lambda d: (-bool(d['queries']), -len(d['instances'])))
    chosen, cams = [], []
    for d in infos:
        if len(chosen) < num_frames and (cams.count(d['cam_id']) < 2 or layout == 'cuhk'):
            chosen.append(d)
            cams.append(d['cam_id'])
    tile_w, tile_h, scale = 480, 360, 1.25
    cols = 3
    rows = (len(chosen) + cols - 1) // cols
    grid = np.full((rows * (tile_h + 30), cols * tile_w, 3), 255, np.uint8)
    for n, d in enumerate(chosen):
        img = cv2.imread(d['img_path'])
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        query_boxes = {tuple(q['bbox']) for q in d['queries']}
        for ins in d['instances']:
            x1, y1, x2, y2 = (int(v * scale) for v in ins['bbox'])
            pid = ins['person_id']
            if pid < 0:
                color, text = (150, 150, 150), 'unlabelled'
            else:
                rng = np.random.default_rng(pid)
                color = tuple(int(v) for v in rng.integers(40, 255, 3))
                text = f'id {pid}'
            thick = 4 if tuple(ins['bbox']) in query_boxes else 2
            cv2.rectangle(img, (x1, y1), (x2, y2), color, thick)
            if thick == 4:
                text = 'Q ' + text
            (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
            ty = max(th + 2, y1 - 3)
            cv2.rectangle(img, (x1, ty - th - 2), (x1 + tw + 2, ty + 2), color, -1)
            cv2.putText(img, text, (x1 + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                        cv2.LINE_AA)
        h, w = img.shape[:2]
        r, c = divmod(n, cols)
        y0, x0 = r * (tile_h + 30), c * tile_w
        grid[y0 + 30:y0 + 30 + min(h, tile_h), x0:x0 + min(w, tile_w)] = img[:tile_h, :tile_w]
        label = f'{d["img_id"]}' + (f'  (camera {d["cam_id"]})' if d['cam_id'] >= 0 else '')
        cv2.putText(grid, label, (x0 + 6, y0 + 21), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0),
                    1, cv2.LINE_AA)
    os.makedirs(osp.dirname(osp.abspath(out_png)), exist_ok=True)
    cv2.imwrite(out_png, grid, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f'preview: {out_png}')


def main(argv=None):
    args = parse_args(argv)
    if args.preview and args.layout == 'coco':
        raise SystemExit('make_synthetic: --preview draws test frames with queries '
                         '(prw or cuhk layout)')
    generate(args)
    if args.preview:
        draw_preview(args.out, args.layout, args.preview, args.preview_frames)


if __name__ == '__main__':
    main()
