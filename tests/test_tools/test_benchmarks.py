# Copyright (c) mmpsearch contributors. All rights reserved.
"""The throughput benchmarks run on the CPU at a small size (their CUDA numbers are taken
on a GPU machine, docs/benchmarks.md)."""
import importlib.util
import math
import os.path as osp

import pytest

from tests.test_engine.test_hooks.test_flush_denormal_hook import _denormal_product

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_CONFIG = osp.join(_REPO, 'configs', 'spnet', 'spnet-s_convnext-atto_quickstart_synthetic-prw.py')


def _load(name):
    path = osp.join(_REPO, 'tools', 'analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_train_cpu(tmp_path):
    bench = _load('benchmark_train')
    synth = tmp_path / 'synth'
    bench.make_synthetic('prw', str(synth))
    res = bench.main([_CONFIG, '--device', 'cpu', '--iters', '2', '--warmup', '1',
                      '--num-workers', '0', '--data-root', str(synth), '--cfg-options',
                      'train_dataloader.batch_size=2'])
    assert res['batch_size'] == 2 and res['iters'] == 2
    assert res['images_per_s'] > 0 and 0 <= res['data_wait_share'] < 1
    assert math.isnan(res['peak_mem_gb'])
    assert res['losses'] and all(math.isfinite(v) for v in res['losses'].values())
    # the run flushed denormals and restored PyTorch's default after it
    assert _denormal_product() > 0


def test_benchmark_infer_cpu():
    bench = _load('benchmark_infer')
    res = bench.main([_CONFIG, '--device', 'cpu', '--size', '192', '320', '--iters', '2',
                      '--warmup', '1', '--batch-size', '2'])
    assert res['images_per_s'] > 0 and res['median_s'] > 0


def test_benchmark_train_pretraining_parts(tmp_path):
    """QC pre-training on a tiny synthetic COCO set, with the CQ loss and teacher timed."""
    from mmpsearch.datasets.synthetic import make_synthetic
    bench = _load('benchmark_train')
    synth = tmp_path / 'coco'
    make_synthetic(str(synth), layout='coco', num_train_frames=8, num_test_frames=2)
    parts = ['roi_head.loss_reid', 'teacher.module.features', 'update_teacher']
    config = osp.join(_REPO, 'configs', 'spnet',
                      'spnet-s-qcpt_convnext-atto_quick_synthetic-coco.py')
    res = bench.main([config, '--device', 'cpu', '--iters', '2', '--warmup', '1',
                      '--num-workers', '0', '--data-root', str(synth), '--time-parts',
                      *parts, '--cfg-options', 'train_dataloader.batch_size=4',
                      'train_dataloader.dataset.indices=4'])
    assert set(res['losses']) >= {'loss_anchor_cls', 'loss_bbox0', 'loss_reid'}
    assert set(res['part_shares']) == set(parts)
    assert all(0 < v < 1 for v in res['part_shares'].values())


def test_benchmark_index_compares_factories(tmp_path):
    """Two FAISS factories over one set of shards: a row per (factory, nprobe), recall in
    [0, 1], and the shards built once."""
    pytest.importorskip('faiss')
    bench = _load('benchmark_index')
    results = bench.main(['--rows', '3000', '--per-identity', '10', '--queries', '8',
                          '--exact-queries', '2', '--nprobe', '2', '16', '--train-size',
                          '3000', '--factory', 'IVF16,PQ16', 'IVF16,PQ32x4fs',
                          '--work-dir', str(tmp_path)])
    (res,) = results
    assert [(a['factory'], a['nprobe']) for a in res['approximate']] == [
        ('IVF16,PQ16', 2), ('IVF16,PQ16', 16), ('IVF16,PQ32x4fs', 2), ('IVF16,PQ32x4fs', 16)]
    assert all(0.0 <= a['recall_at_10'] <= 1.0 for a in res['approximate'])
    # visiting every list finds what the exact search finds, up to the shortlist's re-scoring
    assert all(a['recall_at_10'] >= 0.9 for a in res['approximate'] if a['nprobe'] == 16)
    assert res['exact_p50_ms'] > 0
