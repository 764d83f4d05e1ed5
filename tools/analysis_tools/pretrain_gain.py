# Copyright (c) mmpsearch contributors. All rights reserved.
"""The synthetic counterpart of the supplement's Table 5: does pre-training help?

Pre-trains the quick-start model on the synthetic COCO-layout set, query-centric (QC) and
object-centric (OC), then fine-tunes it with the quick-start recipe on the synthetic
PRW-layout set, against the same fine-tuning from random initialisation. Every fine-tuning
run has the same iteration budget and differs only by its initialisation and its seed.
Prints a table (mean ± half the range over the fine-tuning seeds) and writes it with every
run's numbers to ``WORK_DIR/pretrain_gain.json``.

Example:
    python tools/analysis_tools/pretrain_gain.py --work-dir work_dirs/pretrain_gain

What it runs (each a ``tools/train.py`` process; finished runs are reused, so an
interrupted comparison continues where it stopped):

1. the data sets: ``tools/make_synthetic.py --layout prw --seed 0`` and ``--layout coco``
   (``--coco-seed``; another random stream, so no person of the PRW set appears in it);
2. pre-training, once per kind (``--pretrain qc oc``): the quick pre-training configs
   (``spnet-s-{qc,oc}pt_convnext-atto_quick_synthetic-coco.py``) on ``--pt-images`` images
   for ``--pt-epochs`` epochs, with the quick-start model's anchors (so the anchor
   embedding learns the shapes it is fine-tuned with);
3. fine-tuning, per initialisation and seed: the quick-start config
   (``spnet-s_convnext-atto_quickstart_synthetic-prw.py``) for ``--ft-epochs`` epochs,
   loading pre-trained weights with ``init_cfg=dict(type='SPNetPretrained', ...)``
   (spec §5 rules; the bridge of a QC checkpoint starts at zero). The random-init runs
   are the quick start itself at the same budget.

Defaults: pre-training 4 epochs on the 600 synthetic COCO images (2 x 300 iterations),
fine-tuning 4 epochs (300 iterations) x 3 seeds x 3 initialisations; about 45 minutes on
2 CPU cores.

The configs of each run are written to ``WORK_DIR/configs/`` as a few lines over the
shipped ones, so any run can be repeated by hand with ``tools/train.py``.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs', 'spnet')
FT_CONFIG = osp.join(CONFIGS, 'spnet-s_convnext-atto_quickstart_synthetic-prw.py')
PT_CONFIG = osp.join(CONFIGS, 'spnet-s-{kind}pt_convnext-atto_quick_synthetic-coco.py')
# The metrics of the table: (column title, key in the validation record).
METRICS = (('search mAP', 'mAP'), ('top-1', 'top1'),
           ('GT re-id mAP', 'reid_standard/mAP'), ('det. AP', 'det/AP'))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Pre-training gain on the synthetic sets')
    p.add_argument('--work-dir', default='work_dirs/pretrain_gain')
    p.add_argument('--prw-root', default='data/synthetic_prw')
    p.add_argument('--coco-root', default='data/synthetic_coco_pt')
    p.add_argument('--coco-seed', type=int, default=0)
    p.add_argument('--coco-frames', type=int, default=600,
                   help='training frames of the synthetic COCO set')
    p.add_argument('--pretrain', nargs='*', default=['qc', 'oc'], choices=['qc', 'oc'],
                   help='pre-training kinds to compare with random init')
    p.add_argument('--pt-images', type=int, default=600,
                   help='pre-training images (the first N of the COCO set)')
    p.add_argument('--pt-epochs', type=int, default=4)
    p.add_argument('--pt-seed', type=int, default=0)
    p.add_argument('--ft-epochs', type=int, default=4,
                   help='fine-tuning epochs (the quick start trains 16; a short budget is '
                   'where pre-training matters most and what the CPU allows for 9 runs)')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                   help='fine-tuning seeds')
    p.add_argument('--dry-run', action='store_true', help='write the configs, print the '
                   'commands, run nothing')
    return p.parse_args(argv)


def write_pretrain_config(path: str, kind: str, args, anchor_generator: dict) -> None:
    max_epochs = args.pt_epochs
    text = f'''# Pre-training of the pre-training gain comparison (tools/analysis_tools/pretrain_gain.py):
# the quick {kind.upper()} pre-training config on {args.pt_images} images for {max_epochs} epochs, with the
# quick-start model's anchors.
_base_ = {repr(PT_CONFIG.format(kind=kind))}
max_epochs = {max_epochs}
randomness = dict(seed={args.pt_seed})
model = dict(bbox_head=dict(anchor_generator={repr(anchor_generator)}))
train_dataloader = dict(sampler=dict(seed={args.pt_seed}),
                        dataset=dict(data_root={repr(args.coco_root)}, indices={args.pt_images}))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=1))
log_processor = dict(window_size=10)
'''
    with open(path, 'w') as f:
        f.write(text)


def write_finetune_config(path: str, init: str, seed: int, args,
                          checkpoint: str = None) -> None:
    max_epochs = args.ft_epochs
    init_line = ''
    if checkpoint:
        init_line = (f"model = dict(init_cfg=dict(type='SPNetPretrained', "
                     f"checkpoint={repr(checkpoint)}, pretrain_path={repr(init)}))\n")
    text = f'''# Fine-tuning of the pre-training gain comparison (tools/analysis_tools/pretrain_gain.py):
# the quick-start recipe, {max_epochs} epochs, seed {seed}, initialisation: {init}.
_base_ = {repr(FT_CONFIG)}
max_epochs = {max_epochs}
randomness = dict(seed={seed})
{init_line}data_root = {repr(args.prw_root)}
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
'''
    with open(path, 'w') as f:
        f.write(text)


def last_checkpoint(work_dir: str):
    marker = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return None
    with open(marker) as f:
        path = f.read().strip()
    return path if osp.isfile(path) else None


def val_records(work_dir: str):
    """The validation records of a run (``step`` = epoch; step 0 = before training)."""
    records = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'mAP' in rec:
                    records.append(rec)
    return records


def run(cmd, log_path: str, dry_run: bool) -> float:
    print('$ ' + ' '.join(cmd), flush=True)
    if dry_run:
        return 0.0
    start = time.time()
    with open(log_path, 'a') as log:
        proc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f'pretrain_gain: command failed (exit {proc.returncode}); '
                         f'see {log_path}')
    return time.time() - start


def train(config: str, work_dir: str, dry_run: bool) -> float:
    """Train ``config`` into ``work_dir`` unless it finished there (an interrupted run
    resumes from its last checkpoint); returns the seconds."""
    done = osp.join(work_dir, 'DONE')
    if osp.isfile(done):
        with open(done) as f:
            return float(f.read() or 0)
    os.makedirs(work_dir, exist_ok=True)
    cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', work_dir]
    if last_checkpoint(work_dir):
        cmd.append('--resume')
    seconds = run(cmd, osp.join(work_dir, 'pretrain_gain.log'), dry_run)
    if not dry_run:
        with open(done, 'w') as f:
            f.write(f'{seconds:.1f}')
    return seconds


def summarise(values):
    """``(mean, half range)`` of a list."""
    if not values:
        return float('nan'), float('nan')
    return statistics.fmean(values), (max(values) - min(values)) / 2


def main(argv=None):
    args = parse_args(argv)
    args.work_dir = osp.abspath(args.work_dir)
    args.prw_root = osp.abspath(args.prw_root)
    args.coco_root = osp.abspath(args.coco_root)
    cfg_dir = osp.join(args.work_dir, 'configs')
    os.makedirs(cfg_dir, exist_ok=True)
    started = time.time()

    # 1. data
    make = osp.join(REPO, 'tools', 'make_synthetic.py')
    run([sys.executable, make, '--layout', 'prw', '--out', args.prw_root, '--seed', '0',
         '--skip-existing'], osp.join(args.work_dir, 'data.log'), args.dry_run)
    if args.pretrain:
        run([sys.executable, make, '--layout', 'coco', '--out', args.coco_root, '--seed',
             str(args.coco_seed), '--num-train-frames', str(args.coco_frames),
             '--skip-existing'], osp.join(args.work_dir, 'data.log'), args.dry_run)

    # 2. pre-training
    sys.path.insert(0, REPO)
    from mmengine.config import Config
    anchors = Config.fromfile(FT_CONFIG).model.bbox_head.anchor_generator.to_dict()
    anchors = {k: anchors[k] for k in ('sizes', 'ratios') if k in anchors}
    pretrained, seconds = {}, {}
    for kind in args.pretrain:
        cfg_path = osp.join(cfg_dir, f'pretrain_{kind}.py')
        write_pretrain_config(cfg_path, kind, args, anchors)
        work = osp.join(args.work_dir, f'pretrain_{kind}')
        seconds[f'pretrain_{kind}'] = train(cfg_path, work, args.dry_run)
        pretrained[kind] = last_checkpoint(work) or osp.join(work, 'epoch_N.pth')

    # 3. fine-tuning
    inits = ['random'] + list(args.pretrain)
    results = {}
    for init in inits:
        for seed in args.seeds:
            name = f'finetune_{init}_seed{seed}'
            cfg_path = osp.join(cfg_dir, name + '.py')
            write_finetune_config(cfg_path, init, seed, args, pretrained.get(init))
            work = osp.join(args.work_dir, name)
            seconds[name] = train(cfg_path, work, args.dry_run)
            if args.dry_run:
                continue
            recs = val_records(work)
            if not recs:
                raise SystemExit(f'pretrain_gain: no validation record in {work}')
            results[name] = dict(init=init, seed=seed, before=recs[0], after=recs[-1])

    if args.dry_run:
        return
    table = format_table(results, inits, args)
    print(table)
    with open(osp.join(args.work_dir, 'pretrain_gain.json'), 'w') as f:
        json.dump(dict(args=vars(args), seconds=seconds, runs=results,
                       wall_s=time.time() - started), f, indent=1)
    with open(osp.join(args.work_dir, 'pretrain_gain.md'), 'w') as f:
        f.write(table + '\n')


def format_table(results: dict, inits, args) -> str:
    head = '| initialisation | ' + ' | '.join(t for t, _ in METRICS) + \
        ' | search mAP before fine-tuning |'
    lines = [head, '|' + '---|' * (len(METRICS) + 2)]
    for init in inits:
        runs = [r for r in results.values() if r['init'] == init]
        cells = []
        for _, key in METRICS:
            mean, half = summarise([100 * r['after'][key] for r in runs if key in r['after']])
            cells.append(f'{mean:.2f} ± {half:.2f}')
        mean, half = summarise([100 * r['before']['mAP'] for r in runs])
        cells.append(f'{mean:.2f} ± {half:.2f}')
        label = {'random': 'random init', 'qc': 'QC pre-training',
                 'oc': 'OC pre-training'}[init]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    per_seed = ['', 'Per seed (search mAP / top-1 after fine-tuning):', '']
    for name, r in results.items():
        per_seed.append(f'* {name}: {100 * r["after"]["mAP"]:.2f} / '
                        f'{100 * r["after"]["top1"]:.2f}')
    note = (f'\nFine-tuning: {args.ft_epochs} epochs, seeds {args.seeds}; pre-training: '
            f'{args.pt_epochs} epochs on {args.pt_images} synthetic COCO images (seed '
            f'{args.pt_seed}). Mean ± half the range over the fine-tuning seeds.')
    return '\n'.join(lines) + '\n' + '\n'.join(per_seed) + '\n' + note


if __name__ == '__main__':
    main()
