# Copyright (c) mmpsearch contributors. All rights reserved.
"""Per-epoch means of every logged loss of a training run (its ``vis_data/scalars.json``).

Run the config with ``log_processor.window_size=1`` and ``default_hooks.logger.interval=1``
so that every iteration is logged; the means are then exact.

Example:
    python tools/analysis_tools/epoch_loss_means.py work_dirs/spnet-s-qcpt_quick

prints a Markdown table: one row per epoch, one column per ``loss*`` key.
"""
import argparse
import glob
import json
import os.path as osp
from collections import defaultdict


def read_scalars(work_dir: str):
    """Training records (dicts with ``epoch``) of every ``scalars.json`` under
    ``work_dir``, in file order; a resumed run's records replace those of the same
    iteration from before the interruption."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir}')
    by_iter = {}
    for path in files:
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'epoch' in rec and 'iter' in rec and any(k.startswith('loss')
                                                            for k in rec):
                    by_iter[rec['iter']] = rec
    return [by_iter[k] for k in sorted(by_iter)]


def epoch_means(records):
    """``{epoch: {loss key: mean}}`` and the iteration count per epoch."""
    sums = defaultdict(lambda: defaultdict(float))
    counts = defaultdict(int)
    for rec in records:
        counts[rec['epoch']] += 1
        for key, value in rec.items():
            if key.startswith('loss'):
                sums[rec['epoch']][key] += value
    return ({e: {k: v / counts[e] for k, v in s.items()} for e, s in sums.items()},
            dict(counts))


def main(argv=None):
    parser = argparse.ArgumentParser(description='Per-epoch loss means of a run')
    parser.add_argument('work_dir')
    args = parser.parse_args(argv)
    means, counts = epoch_means(read_scalars(args.work_dir))
    keys = sorted({k for m in means.values() for k in m}, key=lambda k: (k != 'loss', k))
    print('| epoch | iterations | ' + ' | '.join(keys) + ' |')
    print('|---' * (len(keys) + 2) + '|')
    for epoch in sorted(means):
        row = [f'{means[epoch].get(k, float("nan")):.4f}' for k in keys]
        print(f'| {epoch} | {counts[epoch]} | ' + ' | '.join(row) + ' |')
    return means


if __name__ == '__main__':
    main()
