# Copyright (c) mmpsearch contributors. All rights reserved.
"""Re-evaluate a person-search results dump without the model.

Example:
    python tools/test.py CONFIG CKPT --out results.pkl       # once, with the model
    python tools/eval_dump.py CONFIG results.pkl             # the config's protocols
    python tools/eval_dump.py CONFIG results.pkl --protocol G50 G500 G4000 --cbgm

Only the test dataset of CONFIG is built (for its ``search_protocol``); the model is not.
The dump must come from the same test split (checked by fingerprint and image names;
a dump of another dataset is refused). Metric options start from the config's
``PersonSearchMetric`` entry in ``test_evaluator`` and are overridden by the flags. The
dump is loaded with a restricted unpickler that refuses anything but plain containers
and numpy arrays (docs/results_format.md).
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmpsearch  # noqa: E402,F401
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from mmpsearch.evaluation import (PersonSearchMetric, check_dump_matches,  # noqa: E402
                                  load_dump)
from mmpsearch.utils import register_all_modules  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Evaluate a person-search results dump (tools/test.py --out) offline')
    parser.add_argument('config', help='the config the dump was made with (its test '
                        'dataset is built, not its model)')
    parser.add_argument('dump', help='results .pkl written by tools/test.py --out')
    parser.add_argument('--protocol', nargs='+', help='protocols to evaluate (default: '
                        'the config\'s metric setting, else all of the dataset)')
    parser.add_argument('--cbgm', action='store_true', help='re-rank with CBGM')
    parser.add_argument('--det-thresh', type=float, help='detection score threshold')
    parser.add_argument('--tie-order', choices=['reversed', 'stable'])
    parser.add_argument('--duplicate-gallery', choices=['released', 'dedup'])
    parser.add_argument('--exclude-query-image', action='store_true')
    parser.add_argument('--no-gt-query', choices=['zero', 'skip', 'error'])
    parser.add_argument('--no-reid', action='store_true', help='skip the GT-box evaluation')
    parser.add_argument('--no-det', action='store_true', help='skip detection AP/recall')
    parser.add_argument('--out-json', help='also write the metrics to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def metric_config(cfg) -> dict:
    """The ``PersonSearchMetric`` entry of ``cfg.test_evaluator`` (or an empty one)."""
    ev = cfg.get('test_evaluator', None)
    items = ev if isinstance(ev, (list, tuple)) else [ev]
    if isinstance(ev, dict) and 'metrics' in ev:
        items = ev['metrics'] if isinstance(ev['metrics'], (list, tuple)) else [ev['metrics']]
    for item in items:
        if isinstance(item, dict) and str(item.get('type', '')).split('.')[-1] == \
                'PersonSearchMetric':
            return {k: v for k, v in item.items() if k != 'type'}
    return {}


def build_search_protocol(cfg) -> dict:
    """Build the config's test dataset (not the model) and return its protocol."""
    from mmpsearch.registry import DATASETS
    init_default_scope(cfg.get('default_scope', 'mmpsearch'))
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    sp = dataset.metainfo.get('search_protocol')
    if sp is None:
        raise KeyError(f'the test dataset of this config ({type(dataset).__name__}) has no '
                       'search_protocol in its metainfo: is it a person-search test split?')
    return dataset.metainfo


def main(argv=None) -> dict:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    kw = metric_config(cfg)
    for key, value in (('protocols', args.protocol), ('det_thresh', args.det_thresh),
                       ('tie_order', args.tie_order),
                       ('duplicate_gallery', args.duplicate_gallery),
                       ('no_gt_query', args.no_gt_query)):
        if value is not None:
            kw[key] = value
    if args.cbgm:
        kw['cbgm'] = True
    if args.exclude_query_image:
        kw['exclude_query_image'] = True
    if args.no_reid:
        kw['gt_reid'] = False
    if args.no_det:
        kw['detection'] = False
    metric = PersonSearchMetric(**kw)
    metainfo = build_search_protocol(cfg)
    sp = metainfo['search_protocol']
    dump = load_dump(args.dump)
    for warning in check_dump_matches(dump, sp, args.dump):
        print_log(warning, logger='current')
    floor = min(metric.det_thresh, metric.det_eval_thresh) if metric.detection else \
        metric.det_thresh
    if floor < dump['score_thr']:
        raise ValueError(f'{args.dump} keeps detections with score >= {dump["score_thr"]}, '
                         f'so it cannot be evaluated at a threshold of {floor}')
    metric.dataset_meta = metainfo
    # query-centric dumps record which protocols' (query, image) pairs were searched
    metric.qc_searched_protocols = dump.get('qc_protocols')
    if metric.qc_searched_protocols and metric.protocols is None:
        metric.protocols = list(metric.qc_searched_protocols)

    from tqdm import tqdm
    bar = tqdm(total=0, desc='queries', unit='q', file=sys.stdout, mininterval=0.5)

    def progress(done, total):
        if bar.total != total:
            bar.total = total
        bar.n = done
        if done >= total:
            bar.close()  # before the metric logs its table
        else:
            bar.refresh()

    try:
        results = metric.evaluate_records(dump['records'], source=args.dump,
                                          progress=progress)
    finally:
        bar.close()
    print(json.dumps(results, indent=1))
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == '__main__':
    main()
