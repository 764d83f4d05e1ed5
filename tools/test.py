# Copyright (c) mmpsearch contributors. All rights reserved.
"""Test (evaluate) a person-search model (the mmdet 3.x ``tools/test.py`` interface).

Example:
    python tools/test.py CONFIG CHECKPOINT --out results.pkl
    mim test mmpsearch CONFIG --checkpoint CHECKPOINT --out results.pkl

``--out`` writes a versioned person-search dump (detections, embeddings of detections,
of annotated boxes and of queries) that ``tools/eval_dump.py`` re-evaluates offline for
any protocol; see docs/results_format.md.
"""
import argparse
import os
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):  # a checkout, not mim's copy
    sys.path.insert(0, _REPO)

import mmpsearch  # noqa: E402,F401
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmpsearch.utils import (adapt_cfg_to_cpu_distributed,  # noqa: E402
                             ensure_default_scope, register_all_modules)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a person-search model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the evaluation metrics')
    parser.add_argument('--out', type=str,
                        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='directory where painted images are saved '
                        '(relative to the work dir)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (xxx=[a,b] for lists)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args):
    """Switch on the config's visualization hook for ``--show``/``--show-dir``."""
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise RuntimeError('--show/--show-dir need a `visualization` hook in default_hooks '
                           f'of {args.config}.')
    hook = default_hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        hook['test_out_dir'] = args.show_dir
    return cfg


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    ensure_default_scope(cfg)
    adapt_cfg_to_cpu_distributed(cfg)  # gloo and CPU DDP when CUDA is unavailable
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl/.pickle file, got {args.out!r}')
        dump_metric = runner.build_evaluator(
            dict(type='DumpPersonSearchResults', out_file_path=args.out)).metrics[0]
        # the test loop set dataset_meta on the metrics it built; this one comes later
        dump_metric.dataset_meta = runner.test_dataloader.dataset.metainfo
        runner.test_evaluator.metrics.append(dump_metric)
    runner.test()


if __name__ == '__main__':
    main()
