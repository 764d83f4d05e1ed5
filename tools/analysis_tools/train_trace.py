# Copyright (c) mmpsearch contributors. All rights reserved.
"""Trace the first training iterations of a config bit by bit, to compare CPU kernels.

Trains ``--iters`` iterations from a fixed seed (model init, data order and augmentation
all seeded; data loaded in the main process) and records every iteration's loss terms and
gradient norm at full precision, plus a checksum of the final weights. Run it twice under
different CPU kernel settings and compare: identical settings give identical traces, and
any difference in the floating-point kernels shows up as a first differing iteration that
then grows (docs/get_started.md, "Why the numbers differ between CPUs").

Example:
    python tools/analysis_tools/train_trace.py CONFIG --iters 30 --out native.json
    ATEN_CPU_CAPABILITY=default python tools/analysis_tools/train_trace.py CONFIG \
        --iters 30 --out aten-default.json --compare native.json

Kernel knobs read from the environment (set them before Python starts):
``ATEN_CPU_CAPABILITY`` (PyTorch's own vectorised kernels: default / avx2 / avx512),
``ONEDNN_MAX_CPU_ISA`` (oneDNN convolutions: e.g. SSE41, AVX, AVX2), ``MKL_CBWR`` /
``MKL_ENABLE_INSTRUCTIONS`` (MKL matrix products), ``OMP_NUM_THREADS``.
"""
import argparse
import json
import os
import os.path as osp
import platform
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

import mmpsearch  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.runner import Runner, set_random_seed  # noqa: E402

from mmpsearch.registry import MODELS  # noqa: E402
from mmpsearch.utils import (register_all_modules,  # noqa: E402
                             set_flush_denormal_all_threads)

KERNEL_ENV = ('ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA', 'MKL_CBWR',
              'MKL_ENABLE_INSTRUCTIONS', 'OMP_NUM_THREADS')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Record the first training iterations at full precision')
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=30, help='training iterations')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-root', help='the data set (default: the config\'s)')
    parser.add_argument('--out', help='write the trace to this JSON file')
    parser.add_argument('--compare', help='a trace JSON to compare with')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else ``platform.processor()``."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def kernel_info() -> dict:
    """What selects the CPU kernels of this process."""
    return dict(cpu=cpu_model(), cpu_capability=torch.backends.cpu.get_cpu_capability(),
                torch=torch.__version__, threads=torch.get_num_threads(),
                mkldnn=torch.backends.mkldnn.is_available(),
                env={k: os.environ[k] for k in KERNEL_ENV if k in os.environ})


def _set_data_root(cfg, root):
    ds = cfg.train_dataloader.dataset
    while 'dataset' in ds:
        ds = ds.dataset
    ds.data_root = root


def trace(cfg, iters: int, seed: int) -> dict:
    """Train ``iters`` iterations and record losses, gradient norms and a weight checksum.

    Returns:
        dict: ``iters`` (list of {loss term: float}), ``weight_sum`` (sum of |w| over all
        parameters, float64), ``kernel`` (:func:`kernel_info`).
    """
    set_random_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=seed)
    records = []
    set_flush_denormal_all_threads(True)  # as the configs' FlushDenormalHook
    try:
        it = iter(loader)
        for _ in range(iters):
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                batch = next(it)
            log = model.train_step(batch, optim_wrapper)
            rec = {k: float(v.detach()) for k, v in log.items()}
            # OptimWrapper logs the (pre-clipping) gradient norm when it clips.
            hub = optim_wrapper.message_hub
            if 'train/grad_norm' in hub.log_scalars:
                rec['grad_norm'] = float(hub.get_scalar('train/grad_norm').current())
            records.append(rec)
    finally:
        set_flush_denormal_all_threads(False)
    weight_sum = sum(p.detach().double().abs().sum().item() for p in model.parameters())
    return dict(iters=records, weight_sum=weight_sum, kernel=kernel_info())


def compare(a: dict, b: dict) -> str:
    """A short report: first differing iteration and the relative loss differences."""
    lines = []
    first = None
    for i, (ra, rb) in enumerate(zip(a['iters'], b['iters'])):
        if ra != rb and first is None:
            first = i
    n = min(len(a['iters']), len(b['iters']))
    if first is None:
        lines.append(f'identical over {n} iterations (weight sum equal: '
                     f'{a["weight_sum"] == b["weight_sum"]})')
        return '\n'.join(lines)
    lines.append(f'first difference at iteration {first + 1} of {n}')
    for i in sorted({first, min(first + 1, n - 1), n // 2, n - 1}):
        ra, rb = a['iters'][i], b['iters'][i]
        rel = abs(ra['loss'] - rb['loss']) / max(abs(ra['loss']), 1e-12)
        lines.append(f'  iter {i + 1:4d}: loss {ra["loss"]:.9g} vs {rb["loss"]:.9g} '
                     f'(relative difference {rel:.2e})')
    wa, wb = a['weight_sum'], b['weight_sum']
    lines.append(f'  weight sum {wa:.12g} vs {wb:.12g} (relative difference '
                 f'{abs(wa - wb) / max(abs(wa), 1e-12):.2e})')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
        cfg.optim_wrapper.type = 'OptimWrapper'  # AMP is a CUDA feature here
        cfg.optim_wrapper.pop('loss_scale', None)
        cfg.optim_wrapper.pop('dtype', None)
    if args.data_root:
        _set_data_root(cfg, args.data_root)
    if args.compare and not osp.isfile(args.compare):
        raise FileNotFoundError(f'--compare: no trace file {args.compare}')
    res = trace(cfg, args.iters, args.seed)
    info = res['kernel']
    print(f'cpu: {info["cpu"]}; torch {info["torch"]} capability {info["cpu_capability"]}, '
          f'{info["threads"]} threads, kernel env {info["env"] or "{}"}')
    for i, rec in enumerate(res['iters']):
        print(f'iter {i + 1:4d}: ' + '  '.join(f'{k} {v:.9g}' for k, v in rec.items()))
    print(f'weight sum: {res["weight_sum"]:.15g}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=1)
    if args.compare:
        with open(args.compare) as f:
            other = json.load(f)
        print(f'compared with {args.compare} ({other["kernel"]["cpu_capability"]}, '
              f'{other["kernel"]["threads"]} threads, env {other["kernel"]["env"]}):')
        print(compare(other, res))
    return res


if __name__ == '__main__':
    main()
