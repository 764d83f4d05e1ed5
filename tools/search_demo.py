# Copyright (c) mmpsearch contributors. All rights reserved.
"""Search a query person in a gallery and draw the ranked hits into one picture.

Example:
    python tools/search_demo.py CONFIG CHECKPOINT --query query.jpg --bbox 10 20 60 180 \
        --gallery gallery_dir/ --topk 5 --out search.png
    mim run mmpsearch search_demo CONFIG CHECKPOINT --query ... --bbox ... --gallery ...
"""
import argparse
import json
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

import mmpsearch  # noqa: E402,F401
from mmengine.config import Config, DictAction  # noqa: E402

from mmpsearch.apis import PersonSearchInferencer  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Person-search demo: query image + box '
                                     '→ ranked gallery hits')
    parser.add_argument('config', help='model config')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--query', required=True, help='query image')
    parser.add_argument('--bbox', required=True, type=float, nargs=4,
                        metavar=('X1', 'Y1', 'X2', 'Y2'), help='query person box (pixels)')
    parser.add_argument('--gallery', required=True, nargs='+',
                        help='a folder of images, or image files')
    parser.add_argument('--topk', type=int, default=5)
    parser.add_argument('--score-thr', type=float, default=0.5,
                        help='detections scoring below are not ranked')
    parser.add_argument('--out', default='search_result.png', help='picture to write')
    parser.add_argument('--device', default=None, help='cpu / cuda (default: available)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    inferencer = PersonSearchInferencer(cfg, args.checkpoint, device=args.device,
                                        det_thresh=args.score_thr)
    gallery = args.gallery[0] if len(args.gallery) == 1 else args.gallery
    result = inferencer(gallery, query=args.query, query_bbox=args.bbox, topk=args.topk,
                        batch_size=args.batch_size, out_file=args.out)
    for hit in result['hits']:
        print(json.dumps({k: hit[k] for k in ('rank', 'image', 'bbox', 'similarity', 'score')}))
    print(f'ranked results written to {args.out}')
    return result


if __name__ == '__main__':
    main()
