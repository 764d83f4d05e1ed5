# Copyright (c) mmpsearch contributors. All rights reserved.
"""Scale benchmark of the gallery index: build, disk, memory, query latency, recall.

Example:
    python tools/analysis_tools/benchmark_index.py --rows 1000000 10000000 --work-dir /tmp/bench

For each size N a gallery of N synthetic 128-d detections clustered like real identities
is written (``--dtype float16`` shards of 1M rows): identities of ~``--per-identity``
detections each (a unit centre plus noise, similarity to the centre about 0.75), plus
``--unknown`` of unrelated detections. Then:

* build: time to write the shards (the exact backend needs nothing else) and to train
  and fill the FAISS index (IVF-PQ, ``--factory``; default sized for N);
* disk: shard files and the FAISS file;
* memory: peak resident set size of the process (``ru_maxrss``; memory-mapped shard
  pages it touched included);
* queries (new noisy views of random identities, one at a time): p50/p99 latency of the
  exact backend (``--exact-queries``) and of the approximate one (``--queries``) for
  each ``--nprobe`` (shortlist ``--shortlist`` re-scored exactly), and recall@10 of the
  approximate top-10 against the exact top-10 (all ``--queries``).

Prints one JSON line per size and a markdown table.
"""
import argparse
import json
import os
import os.path as osp
import resource
import shutil
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import numpy as np  # noqa: E402

from mmpsearch.retrieval import GalleryIndex  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Gallery-index scale benchmark')
    p.add_argument('--rows', type=int, nargs='+', default=[1_000_000, 10_000_000])
    p.add_argument('--dim', type=int, default=128)
    p.add_argument('--per-identity', type=int, default=50)
    p.add_argument('--unknown', type=float, default=0.3, help='share of unrelated rows')
    p.add_argument('--noise', type=float, default=0.9,
                   help='noise norm relative to the unit centre')
    p.add_argument('--dtype', default='float16', choices=['float16', 'float32'])
    p.add_argument('--factory', nargs='+', default=[None],
                   help='FAISS factories to compare over the same shards (default: the '
                   'index\'s own, sized for N)')
    p.add_argument('--nprobe', type=int, nargs='+', default=[64, 128, 256])
    p.add_argument('--shortlist', type=int, default=200)
    p.add_argument('--train-size', type=int, default=160_000)
    p.add_argument('--queries', type=int, default=200)
    p.add_argument('--exact-queries', type=int, default=20)
    p.add_argument('--work-dir', default='work_dirs/benchmark_index')
    p.add_argument('--keep', action='store_true', help='keep the index folders')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def disk_gib(path: str) -> float:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(osp.getsize(osp.join(root, f)) for f in files)
    return total / 2 ** 30


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_rows(rng, n, dim, per_identity, unknown, noise, block=1_000_000):
    """Yield (rows, centres) blocks: clustered detections of ``n // per_identity``
    identities plus unrelated ones. Centres are drawn from one seed per block."""
    n_ids = max(1, int(n * (1 - unknown)) // per_identity)
    centres = _unit(rng.standard_normal((n_ids, dim)).astype(np.float32))
    for a in range(0, n, block):
        m = min(block, n - a)
        ids = rng.integers(0, n_ids, m)
        rows = centres[ids] + noise / np.sqrt(dim) * rng.standard_normal((m, dim),
                                                                        np.float32)
        other = rng.random(m) < unknown
        rows[other] = rng.standard_normal((int(other.sum()), dim), np.float32)
        yield _unit(rows).astype(np.float32), centres


def percentiles(ms):
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def run_size(args, n):
    rng = np.random.default_rng(args.seed)
    path = osp.join(args.work_dir, f'synthetic_{n}.index')
    shutil.rmtree(path, ignore_errors=True)
    index = GalleryIndex.create(path, args.dim, model_config='synthetic', dtype=args.dtype)
    t0 = time.perf_counter()
    centres = None
    for k, (rows, centres) in enumerate(synthetic_rows(rng, n, args.dim, args.per_identity,
                                                       args.unknown, args.noise)):
        index.add(rows, f'camera_{k % 8}.mp4', frames=np.arange(len(rows)) // 8,
                  times=np.arange(len(rows)) / 200.0)
    build_exact = time.perf_counter() - t0
    del rows
    qrng = np.random.default_rng(args.seed + 1)
    pick = qrng.integers(0, len(centres), args.queries)
    queries = _unit(centres[pick] + args.noise / np.sqrt(args.dim) *
                    qrng.standard_normal((args.queries, args.dim), np.float32))
    index = GalleryIndex.open(path)
    n_exact = min(args.exact_queries, args.queries)
    exact_ms = []
    index.search_rows(queries[0], 10)  # warm the page cache once
    for q in queries[:n_exact]:
        t = time.perf_counter()
        index.search_rows(q, 10)
        exact_ms.append(1e3 * (time.perf_counter() - t))
    # the exact top-10 of every query, for recall: one batched pass
    exact_top = [set(r.tolist()) for r in index.search_rows(queries, 10)[0]]
    out = dict(rows=n, dim=args.dim, dtype=args.dtype, build_exact_s=round(build_exact, 1),
               disk_shards_gib=round(disk_gib(osp.join(path, 'shards')), 3),
               exact_p50_ms=round(percentiles(exact_ms)[0], 1),
               exact_p99_ms=round(percentiles(exact_ms)[1], 1), approximate=[])
    for factory in args.factory:
        t0 = time.perf_counter()
        ann = index.build_approximate(factory, nprobe=args.nprobe[0],
                                      train_size=args.train_size)
        build_ann = round(time.perf_counter() - t0, 1)
        disk_ann = round(osp.getsize(osp.join(path, 'ann.faiss')) / 2 ** 30, 3)
        index = GalleryIndex.open(path)  # as a user opens a built index
        for nprobe in args.nprobe:
            index.search_rows(queries[0], 10, backend='approximate', nprobe=nprobe)
            ms, recall = [], []
            for i, q in enumerate(queries):
                t = time.perf_counter()
                rows, _ = index.search_rows(q, 10, backend='approximate',
                                            shortlist=args.shortlist, nprobe=nprobe)
                ms.append(1e3 * (time.perf_counter() - t))
                recall.append(len(exact_top[i] & set(rows[0].tolist())) / 10)
            p50, p99 = percentiles(ms)
            out['approximate'].append(dict(
                factory=ann['factory'], build_ann_s=build_ann, disk_ann_gib=disk_ann,
                nprobe=nprobe, shortlist=args.shortlist, p50_ms=round(p50, 2),
                p99_ms=round(p99, 2), recall_at_10=round(float(np.mean(recall)), 4)))
            print(json.dumps(out['approximate'][-1]), flush=True)
    out['peak_rss_gib'] = round(peak_rss_gib(), 2)
    if not args.keep:
        shutil.rmtree(path, ignore_errors=True)
    return out


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    results = []
    for n in args.rows:
        res = run_size(args, n)
        print(json.dumps(res), flush=True)
        results.append(res)
    print('\n| rows | FAISS index | build: shards / FAISS (s) | disk: shards + FAISS (GiB) '
          '| peak RSS (GiB) | exact p50 / p99 (ms) | nprobe | approx. p50 / p99 (ms) '
          '| recall@10 |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in results:
        for a in r['approximate']:
            print(f"| {r['rows']:,} | `{a['factory']}` | {r['build_exact_s']} / "
                  f"{a['build_ann_s']} | {r['disk_shards_gib']} + {a['disk_ann_gib']} | "
                  f"{r['peak_rss_gib']} | {r['exact_p50_ms']} / {r['exact_p99_ms']} | "
                  f"{a['nprobe']} | {a['p50_ms']} / {a['p99_ms']} | {a['recall_at_10']} |")
    return results


if __name__ == '__main__':
    main()
