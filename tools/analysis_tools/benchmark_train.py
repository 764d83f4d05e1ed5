# Copyright (c) mmpsearch contributors. All rights reserved.
"""Measure training throughput of a config: images/s, data-wait share, peak GPU memory.

Runs ``--warmup`` + ``--iters`` training iterations (forward, backward, optimiser step
with the config's optim wrapper, AMP included) on the config's own train pipeline, batch
size and input size, reading a synthetic data set in the config's raw layout (generated
into a temporary folder unless ``--data-root`` is given). Timings exclude the warm-up.

Example:
    python tools/analysis_tools/benchmark_train.py configs/spnet/spnet-s_convnext-t_30e_prw.py
    python tools/analysis_tools/benchmark_train.py CONFIG --device cpu --iters 3 \
        --cfg-options train_dataloader.batch_size=2
    python tools/analysis_tools/benchmark_train.py \
        configs/spnet/spnet-s-qcpt_convnext-atto_quick_synthetic-coco.py --device cpu \
        --time-parts roi_head.loss_reid teacher.module.features teacher.module.embed \
        update_teacher

``--time-parts`` reports the share of the step time spent in named parts of the model
(dotted paths: a submodule's forward, or a method such as ``update_teacher``). A model
with an EMA teacher (``SPNetPretrain``) gets ``update_teacher()`` after every step, as the
``TeacherEMAHook`` of its configs does.
"""
import argparse
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

import mmpsearch  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmpsearch.registry import MODELS  # noqa: E402
from mmpsearch.utils import (register_all_modules,  # noqa: E402
                             set_flush_denormal_all_threads)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Benchmark training throughput')
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=20, help='timed iterations')
    parser.add_argument('--warmup', type=int, default=5, help='untimed iterations first')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--data-root', help='an existing data set in the config\'s layout; '
                        'default: a synthetic one in a temporary folder')
    parser.add_argument('--num-workers', type=int, help='override the dataloader workers')
    parser.add_argument('--channels-last', action='store_true',
                        help='convert the model to channels-last memory format')
    parser.add_argument('--keep-denormals', action='store_true',
                        help='do not flush denormal floats to zero on the CPU (the '
                        'configs\' FlushDenormalHook does); to measure their cost, with '
                        '--warmup 30: they appear after ~20 training iterations')
    parser.add_argument('--time-parts', nargs='+', default=[], metavar='PATH',
                        help='dotted paths of model parts (submodules or methods) whose '
                        'share of the step time is reported, e.g. roi_head.loss_reid')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def _layout_of(cfg):
    ds = cfg.train_dataloader.dataset
    while 'dataset' in ds:  # wrappers (RepeatDataset, ...)
        ds = ds.dataset
    name = ds.type.lower()
    layout = 'cuhk' if 'cuhk' in name else 'coco' if 'coco' in name else 'prw'
    return layout, ds


class PartTimer:
    """Wall time spent in named parts of a model (wrapped in place; nesting-safe).

    Args:
        model (nn.Module): the model.
        paths (list[str]): dotted paths; a submodule is timed through its ``forward``,
            any other callable attribute (a method) directly.
    """

    def __init__(self, model, paths):
        self.totals = {p: 0.0 for p in paths}
        self.enabled = False
        for path in paths:
            *parents, name = path.split('.')
            owner = model
            for part in parents:
                owner = getattr(owner, part)
            target = getattr(owner, name)
            if isinstance(target, torch.nn.Module):
                owner, name = target, 'forward'
            fn = getattr(owner, name)
            if not callable(fn):
                raise ValueError(f'--time-parts: {path} is not callable')
            setattr(owner, name, self._wrap(path, fn))

    def _wrap(self, path, fn):
        def timed(*args, **kwargs):
            if not self.enabled:
                return fn(*args, **kwargs)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.totals[path] += time.perf_counter() - t0
        return timed


def make_synthetic(layout, out_dir, seed=0):
    """Write the synthetic data set in ``layout`` ('prw' | 'cuhk' | 'coco') to ``out_dir``."""
    cmd = [sys.executable, osp.join(_REPO, 'tools', 'make_synthetic.py'), '--layout', layout,
           '--out', out_dir, '--seed', str(seed)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def run_benchmark(cfg, iters, warmup, device, channels_last=False, flush_denormal=True,
                  time_parts=()):
    """Time ``warmup + iters`` training steps.

    ``flush_denormal`` flushes denormal floats to zero during the run, as the configs'
    ``FlushDenormalHook`` does (CPU only), and restores PyTorch's default afterwards.

    Returns:
        dict: ``images_per_s``, ``data_wait_share``, ``median_step_s``, ``peak_mem_gb``,
        ``batch_size``, ``iters``, the last iteration's ``losses`` and ``part_shares``
        (share of the timed steps spent in each of ``time_parts``).
    """
    model = MODELS.build(cfg.model).to(device)
    update_teacher = getattr(model, 'update_teacher', None)  # TeacherEMAHook's work
    timer = PartTimer(model, list(time_parts))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    batch_size = cfg.train_dataloader.batch_size
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    data_times, step_times = [], []
    it = iter(loader)
    losses = {}
    set_flush_denormal_all_threads(flush_denormal)
    try:
        for i in range(warmup + iters):
            _sync(device)
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                it = iter(loader)
                batch = next(it)
            t1 = time.perf_counter()
            timer.enabled = i >= warmup
            losses = model.train_step(batch, optim_wrapper)
            if update_teacher is not None:
                model.update_teacher()
            _sync(device)
            t2 = time.perf_counter()
            if i >= warmup:
                data_times.append(t1 - t0)
                step_times.append(t2 - t0)
    finally:
        set_flush_denormal_all_threads(False)
    total = sum(step_times)
    return dict(
        images_per_s=batch_size * iters / total,
        data_wait_share=sum(data_times) / total,
        median_step_s=statistics.median(step_times),
        peak_mem_gb=(torch.cuda.max_memory_allocated() / 2**30
                     if device.startswith('cuda') else float('nan')),
        batch_size=batch_size, iters=iters,
        losses={k: float(v) for k, v in losses.items()},
        part_shares={k: v / total for k, v in timer.totals.items()})


def main(argv=None):
    args = parse_args(argv)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.device != 'cuda' and cfg.optim_wrapper.get('type') == 'AmpOptimWrapper':
        cfg.optim_wrapper.type = 'OptimWrapper'  # AMP is a CUDA feature here
        cfg.optim_wrapper.pop('loss_scale', None)
        cfg.optim_wrapper.pop('dtype', None)
    if args.num_workers is not None:
        cfg.train_dataloader.num_workers = args.num_workers
        if args.num_workers == 0:
            cfg.train_dataloader.persistent_workers = False
    # Time what the Runner would run: the config's FlushDenormalHook setting, unless
    # --keep-denormals switches it off.
    hook = cfg.get('default_hooks', {}).get('flush_denormal')
    flush_denormal = (bool(hook) and hook.get('enable', True)) and not args.keep_denormals
    layout, ds = _layout_of(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        if args.data_root is None:
            make_synthetic(layout, tmp)
            ds.data_root = tmp
        else:
            ds.data_root = args.data_root
        res = run_benchmark(cfg, args.iters, args.warmup, args.device, args.channels_last,
                            flush_denormal=flush_denormal, time_parts=args.time_parts)
    dev = torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'
    print(f'config: {args.config}\ndevice: {dev}\nbatch: {res["batch_size"]}, '
          f'timed iters: {res["iters"]} (after {args.warmup} warm-up), denormals '
          f'{"flushed" if flush_denormal else "kept"}')
    print(f'images/s: {res["images_per_s"]:.2f}\nmedian step: {res["median_step_s"]:.3f} s\n'
          f'data wait: {100 * res["data_wait_share"]:.1f}% of the time\n'
          f'peak GPU memory: {res["peak_mem_gb"]:.2f} GiB')
    for part, share in res['part_shares'].items():
        print(f'time in {part}: {100 * share:.1f}% of the step time')
    return res


if __name__ == '__main__':
    main()
