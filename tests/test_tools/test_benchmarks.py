# Copyright (c) mmpsearch contributors. All rights reserved.
"""The throughput benchmarks run on the CPU at a small size (their CUDA numbers are taken
on a GPU machine, docs/benchmarks.md)."""
import importlib.util
import math
import os.path as osp

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
