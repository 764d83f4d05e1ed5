# Copyright (c) mmpsearch contributors. All rights reserved.
"""Time the person-search evaluation at benchmark scale against the per-query loop.

Example:
    python tools/analysis_tools/benchmark_eval.py                      # both cases
    python tools/analysis_tools/benchmark_eval.py --case prw --oracle-queries all

Cases (drawn by ``mmpsearch.evaluation.toy_data.random_case``):

* ``prw``: 2,057 queries, 6,112 frames in 6 cameras, ~4 annotated boxes and 12
  detections per frame, 128-d embeddings; protocols ``standard`` and ``multi_view``;
* ``cuhk``: 2,900 queries, 6,978 images, ~6 boxes and 12 detections per image, 128-d,
  protocol ``G4000`` (4,000-image gallery per query).

``--embeddings realistic`` (default) draws identity prototypes plus noise (search mAP
about 54 % / top-1 94 % on the PRW case, 86 % / 98 % on G4000); ``random`` draws
unrelated embeddings (an untrained model: the worst case for the fast path, whose
pruning and band sizes depend on where the true positives rank).

Printed per case: the time of ``PersonSearchMetric.compute_metrics`` (all protocols,
GT-box re-id, detection), of the search alone, and of the plain per-query loop
(``functional/reference.py``). The loop takes about 11 minutes at PRW scale on a
2-core machine, so by default it runs on ``--oracle-queries`` queries per protocol and
the full time is extrapolated (linear in queries); ``--oracle-queries all`` measures it.
The fast and loop results of those queries are compared (max |ΔAP|, top-k mismatches).
"""
import argparse
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmpsearch.evaluation import PersonSearchMetric  # noqa: E402
from mmpsearch.evaluation.functional import DetectionSet, evaluate_search  # noqa: E402
from mmpsearch.evaluation.functional.reference import reference_search  # noqa: E402
from mmpsearch.evaluation.protocols import build_search_galleries, query_set  # noqa: E402
from mmpsearch.evaluation.toy_data import random_case  # noqa: E402

CASES = {
    'prw': dict(kind='PRW', num_images=6112, num_ids=450, gt_per_image=(2, 6),
                dets_per_image=12, dim=128, num_queries=2057, num_cams=6),
    'cuhk': dict(kind='CUHK-SYSU', num_images=6978, num_ids=2900, gt_per_image=(3, 9),
                 dets_per_image=12, dim=128, num_queries=2900, gallery_sizes=(4000, ),
                 query_subset=False),
}
NOISE = {'realistic': dict(prw=1.5, cuhk=1.2), 'random': dict(prw=1e4, cuhk=1e4)}


def parse_args():
    parser = argparse.ArgumentParser(description='Benchmark the person-search evaluation')
    parser.add_argument('--case', nargs='+', choices=sorted(CASES), default=['prw', 'cuhk'])
    parser.add_argument('--embeddings', choices=sorted(NOISE), default='realistic')
    parser.add_argument('--oracle-queries', default='100',
                        help="queries per protocol for the loop oracle, or 'all'")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=2, help='torch threads (GEMM)')
    return parser.parse_args()


def run_case(name, args):
    spec = dict(CASES[name])
    rng = np.random.default_rng(args.seed)
    t = time.time()
    case = random_case(rng, noise=NOISE[args.embeddings][name], low_score=0.1, **spec)
    sp = case.search_protocol
    records = case.records()
    n_det = sum(len(b) for b in case.det_bboxes)
    print(f'\n== {name}: {len(sp["query_bboxes"])} queries, {len(sp["image_ids"])} images, '
          f'{len(sp["gt_bboxes"])} annotated boxes, {n_det} detections, '
          f'{case.query_feats.shape[1]}-d, protocols {list(sp["protocols"])} '
          f'(drawn in {time.time() - t:.1f} s; embeddings {args.embeddings})')

    metric = PersonSearchMetric()
    metric.dataset_meta = dict(search_protocol=sp)
    t, c = time.time(), time.process_time()
    out = metric.compute_metrics(records)
    t_full, c_full = time.time() - t, time.process_time() - c
    # search alone, per query (the numbers the loop also produces)
    offs = np.r_[0, np.cumsum([len(b) for b in case.det_bboxes])]
    dets = DetectionSet(offs, np.concatenate(case.det_bboxes),
                        np.concatenate(case.det_scores),
                        np.concatenate(case.det_feats)).above(0.5)
    gal = build_search_galleries(sp)
    t = time.time()
    fast = evaluate_search(query_set(sp, case.query_feats), dets, list(gal.values()),
                           sp['image_cams'])
    t_search = time.time() - t
    print(f'fast: compute_metrics {t_full:.2f} s (search + GT-box re-id + detection; '
          f'process CPU time {c_full:.2f} s), search alone {t_search:.2f} s')
    for p in gal:
        print(f'  {p}: mAP {100 * out[p + "/mAP"]:.2f}  top-1 {100 * out[p + "/top1"]:.2f}  '
              f'reid mAP {100 * out["reid_" + p + "/mAP"]:.2f}')

    t_oracle, t_extra, max_diff, mismatch, n_meas, n_all = 0., 0., 0., 0, 0, 0
    for p, g in gal.items():
        n = g.num_queries
        k = n if args.oracle_queries == 'all' else min(n, int(args.oracle_queries))
        rows = np.unique(np.linspace(0, n - 1, k).round().astype(int))
        t = time.time()
        ref = reference_search(sp, p, case.query_feats, case.det_bboxes, case.det_scores,
                               case.det_feats, rows=rows)
        dt = time.time() - t
        t_oracle += dt
        t_extra += dt * n / len(rows)
        n_meas += len(rows)
        n_all += n
        max_diff = max(max_diff, float(np.abs(fast[p].ap[rows] - ref['ap']).max()))
        mismatch += int((fast[p].topk[rows] != ref['topk']).any(1).sum())
    if n_meas == n_all:
        print(f'oracle (per-query loop): {t_oracle:.1f} s measured on all {n_all} queries')
    else:
        print(f'oracle (per-query loop): {t_oracle:.1f} s measured on {n_meas} of {n_all} '
              f'queries -> {t_extra:.0f} s ({t_extra / 60:.1f} min) extrapolated to all')
    print(f'fast vs oracle on the measured queries: max |dAP| = {max_diff:.1e}, top-k '
          f'mismatches = {mismatch}')
    print(f'speed-up of the search: {t_extra / t_search:.0f}x '
          f'({"measured" if n_meas == n_all else "extrapolated"}); load average now '
          f'{os.getloadavg()[0]:.2f}')


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    load = ', '.join(f'{v:.2f}' for v in os.getloadavg())
    print(f'{os.cpu_count()} CPUs, load average {load} (the machine is shared: timings '
          f'include other users), torch threads {args.threads}')
    for name in args.case:
        run_case(name, args)


if __name__ == '__main__':
    main()
