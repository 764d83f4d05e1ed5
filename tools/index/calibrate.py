# Copyright (c) mmpsearch contributors. All rights reserved.
"""Calibrate an index's "not present" threshold on a labelled split.

The threshold is the lowest similarity at which the top-k hits of the split's queries
reach the target precision (mmpsearch/retrieval/calibration.py); it is stored in the
index, and queries then answer "not found above threshold" when no hit reaches it.

Examples:
    # your own annotated frames: a JSON list of {"image": path, "boxes": [[x1,y1,x2,y2],
    # ...], "ids": [identity, ...]}; the index's model embeds them
    python tools/index/calibrate.py cctv.index --labelled labels.json \
        --target-precision 0.95 --curve pr.png
    # a test split: its tools/test.py --out dump and its config (no model is run)
    python tools/index/calibrate.py cctv.index --dump results.pkl --config CONFIG
"""
import argparse
import json
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

from mmpsearch.retrieval import GalleryIndex, calibrate_threshold, pair_labels  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Calibrate the similarity threshold of an index')
    p.add_argument('index', help='index folder')
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--labelled', help='JSON list of annotated images (see the docstring)')
    src.add_argument('--dump', help='a tools/test.py --out dump of a labelled test split')
    p.add_argument('--config', default=None,
                   help="with --dump: the split's config; with --labelled: the model "
                   "config (default: the build's)")
    p.add_argument('--checkpoint', default=None, help="model (default: the build's)")
    p.add_argument('--target-precision', type=float, default=0.9)
    p.add_argument('--topk', type=int, default=10, help='hits per query that are judged')
    p.add_argument('--score-thr', type=float, default=None,
                   help="detection score threshold (default: the build's)")
    p.add_argument('--curve', default=None, help='draw the precision/recall curve here')
    p.add_argument('--dry-run', action='store_true', help='report, do not store')
    p.add_argument('--device', default=None)
    return p.parse_args(argv)


def _split_from_dump(args, score_thr):
    from mmengine.config import Config

    from mmpsearch.evaluation import check_dump_matches, load_dump
    from mmpsearch.retrieval.calibration import split_from_dump
    from mmpsearch.utils import register_all_modules
    if not args.config:
        raise ValueError('--dump needs --config (the config of the split it was made on)')
    register_all_modules(init_default_scope=False)
    sys.path.insert(0, osp.join(_REPO, 'tools'))
    from eval_dump import build_search_protocol
    sp = build_search_protocol(Config.fromfile(args.config))['search_protocol']
    dump = load_dump(args.dump)
    check_dump_matches(dump, sp, args.dump)
    return split_from_dump(dump, sp, score_thr, args.dump)


def _split_from_images(args, index, score_thr):
    from mmpsearch.retrieval.calibration import split_from_images
    from mmpsearch.retrieval.search_api import load_inferencer, model_identity
    extra = index.manifest.extra
    config = args.config or extra.get('config')
    ckpt = args.checkpoint or extra.get('checkpoint')
    if not osp.isfile(args.labelled):
        raise FileNotFoundError(f'labelled split not found: {args.labelled}')
    try:
        with open(args.labelled, encoding='utf-8') as f:
            items = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{args.labelled} is not valid JSON: {e}') from e
    inferencer = load_inferencer(config, ckpt, args.device, score_thr)
    ident = model_identity(inferencer)
    index.check_model(ident['model_config'], ident['checkpoint_sha256'])
    root = osp.dirname(osp.abspath(args.labelled))
    for item in items:  # image paths relative to the JSON file
        item['image'] = osp.join(root, item['image'])
    return split_from_images(inferencer, items, score_thr)


def main(argv=None):
    args = parse_args(argv)
    index = GalleryIndex.open(args.index)
    score_thr = args.score_thr if args.score_thr is not None else float(
        index.manifest.extra.get('score_thr', 0.5))
    split = _split_from_dump(args, score_thr) if args.dump else \
        _split_from_images(args, index, score_thr)
    index.check_model(embedding_dim=split[0].shape[1])
    sims, correct, positives = pair_labels(*split, topk=args.topk)
    cal = calibrate_threshold(sims, correct, positives, args.target_precision,
                              num_queries=len(split[0]), topk=args.topk,
                              source=osp.abspath(args.dump or args.labelled))
    if args.curve:
        cal.plot(args.curve)
    if not args.dry_run:
        index.set_threshold(cal.to_manifest())
    print(json.dumps(cal.to_manifest()))
    return cal


if __name__ == '__main__':
    main()
