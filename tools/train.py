# Copyright (c) mmpsearch contributors. All rights reserved.
"""Train a person-search model (the mmdet 3.x ``tools/train.py`` interface).

Example:
    python tools/train.py configs/spnet/spnet-s_convnext-t_30e_prw.py --amp
    mim train mmpsearch spnet-s_convnext-t_30e_prw.py --work-dir work_dirs/s
"""
import argparse
import os
import os.path as osp
import sys

# Run from a checkout without installing: the repo root goes first on the path.
_REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):  # a checkout, not mim's copy
    sys.path.insert(0, _REPO)

import mmpsearch  # noqa: E402,F401  (compat layer before mmpretrain/mmdet imports)
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmpsearch.utils import (adapt_cfg_to_cpu_distributed,  # noqa: E402
                             ensure_default_scope, register_all_modules)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a person-search model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or from the latest one in '
                        'the work dir when no path is given')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (xxx=[a,b] for lists)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args):
    """Load the config and apply the command-line overrides.

    Returns:
        Config: the final config.
    """
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print('AMP training is already enabled in the config.')
        else:
            assert optim_wrapper == 'OptimWrapper', (
                f'`--amp` only works with OptimWrapper, got {optim_wrapper}.')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs `auto_scale_lr.base_batch_size` in the '
                               f'config {args.config}.')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = build_cfg(args)
    ensure_default_scope(cfg)
    adapt_cfg_to_cpu_distributed(cfg)  # gloo and CPU DDP when CUDA is unavailable
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
