# Copyright (c) mmpsearch contributors. All rights reserved.
"""CUHK-SYSU test-split loading at a few hundred thousand gallery entries: fast, and the
gallery lists are exactly the files' (encoded as the original files: zero-byte empty
elements, class double with uint8/uint16 data, UTF-8 characters), read by the vectorised
reader. tools/analysis_tools/benchmark_cuhk_load.py times the real scale."""
import importlib.util
import os.path as osp
import time

import numpy as np

from mmpsearch.datasets import CUHKSYSUDataset, _mat_protocol

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool():
    path = osp.join(_REPO, 'tools', 'analysis_tools', 'benchmark_cuhk_load.py')
    spec = importlib.util.spec_from_file_location('benchmark_cuhk_load', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scaled_cuhk_test_split_loads_fast(tmp_path, monkeypatch):
    root = str(tmp_path / 'cuhk')
    expected, query_images = _load_tool().write_tree(
        root, n_pool=1200, n_train=40, n_queries=300, n_train_persons=5,
        gallery_sizes=(50, 1000), n_occlusion=20, n_resolution=30, seed=1, size=(320, 240))

    def no_fallback(path, *args):
        raise AssertionError(f'{path}: the vectorised reader fell back to scipy')

    monkeypatch.setattr(_mat_protocol, '_read_scipy', no_fallback)
    start = time.perf_counter()
    ds = CUHKSYSUDataset(data_root=root, split='test', test_mode=True)
    elapsed = time.perf_counter() - start
    assert elapsed < 15, elapsed  # ~1 s here; 315k gallery entries
    sp = ds.metainfo['search_protocol']
    names = np.array(sp['image_ids'])
    for g, lists in expected.items():
        p = sp['protocols'][f'G{g}']
        assert np.array_equal(names[p['gallery_image_idx']], np.array(lists))
        assert np.array_equal(p['query_idx'], np.arange(300))
    assert [sp['image_ids'][i] for i in sp['query_image_idx']] == query_images
    assert sp['protocols']['Occlusion']['gallery_image_idx'].shape == (20, 50)
    assert sp['protocols']['Resolution']['query_idx'].shape == (30, )
