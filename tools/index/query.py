# Copyright (c) mmpsearch contributors. All rights reserved.
"""Search a person (query image + box) in a gallery index.

Examples:
    python tools/index/query.py cctv.index --query person.jpg --bbox 10 20 60 180 \
        --topk 10 --out hits.png
    python tools/index/query.py cctv.index --query person.jpg --bbox ... --backend approximate
    python tools/index/query.py cctv.index --query person.jpg --bbox ... --cbgm

The model is the one recorded in the index (config and checkpoint paths of the build),
or --config/--checkpoint; an index built by another model is refused. Each hit is printed
as one JSON line (rank, similarity, source, frame, time, box, score); with a calibrated
threshold a person absent from the gallery is answered "not found above threshold".
"""
import argparse
import json
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

from mmpsearch.retrieval import GalleryIndex  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Query a person-search gallery index')
    p.add_argument('index', help='index folder (tools/index/build.py --out)')
    p.add_argument('--query', required=True, help='query image')
    p.add_argument('--bbox', required=True, type=float, nargs=4,
                   metavar=('X1', 'Y1', 'X2', 'Y2'), help='query person box (pixels)')
    p.add_argument('--topk', type=int, default=10)
    p.add_argument('--backend', choices=['exact', 'approximate'], default='exact')
    p.add_argument('--threshold', default='calibrated',
                   help="'calibrated' (the index's, if any), 'none', or a similarity")
    p.add_argument('--cbgm', action='store_true', help='CBGM re-ranking of the top hits')
    p.add_argument('--cbgm-k1', type=int, default=10)
    p.add_argument('--cbgm-k2', type=int, default=3)
    p.add_argument('--nprobe', type=int, default=None, help='approximate: IVF lists visited')
    p.add_argument('--shortlist', type=int, default=None,
                   help='approximate: candidates re-scored exactly (default 20 x topk, '
                   '>= 200)')
    p.add_argument('--exclude-source', nargs='+', default=None, metavar='SOURCE',
                   help='leave out hits from these sources (e.g. the query\'s own frame, '
                   'which the CUHK-SYSU and PRW protocols never search)')
    p.add_argument('--out', default=None, help='draw the query and its hits into a picture')
    p.add_argument('--image-root', default=None,
                   help='folder of the images of an index built from a results dump')
    p.add_argument('--config', default=None, help='model config (default: the build\'s)')
    p.add_argument('--checkpoint', default=None, help='checkpoint (default: the build\'s)')
    p.add_argument('--device', default=None)
    return p.parse_args(argv)


def _threshold(text):
    if text == 'calibrated':
        return 'calibrated'
    if text.lower() == 'none':
        return None
    return float(text)


def main(argv=None):
    args = parse_args(argv)
    index = GalleryIndex.open(args.index)
    extra = index.manifest.extra
    config = args.config or extra.get('config')
    ckpt = args.checkpoint or extra.get('checkpoint')
    if not config or not ckpt:
        raise ValueError(f'{args.index} does not record its model: pass --config and '
                         '--checkpoint')
    from mmpsearch.retrieval.search_api import load_inferencer
    inferencer = load_inferencer(config, ckpt, args.device,
                                 float(extra.get('score_thr', 0.5)))
    result = inferencer.search_index(index, args.query, args.bbox, topk=args.topk,
                                     backend=args.backend,
                                     threshold=_threshold(args.threshold), cbgm=args.cbgm,
                                     cbgm_k1=args.cbgm_k1, cbgm_k2=args.cbgm_k2,
                                     shortlist=args.shortlist, nprobe=args.nprobe,
                                     out_file=args.out, image_root=args.image_root,
                                     exclude_sources=args.exclude_source)
    for hit in result['hits']:
        print(json.dumps(hit))
    print(result['message'] if result['found'] or result['threshold'] is None else
          f'not found above threshold {result["threshold"]:.4f}: the person is not '
          'present in this gallery (at the calibrated precision)')
    if args.out and result['hits']:
        print(f'hits drawn into {args.out}')
    return result


if __name__ == '__main__':
    main()
