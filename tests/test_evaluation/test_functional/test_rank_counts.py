# Copyright (c) mmpsearch contributors. All rights reserved.
"""Exact counting pieces: average precision, bucket grid error bound, threshold counts."""
import numpy as np
import pytest

from mmpsearch.evaluation.functional import average_precision, match_threshold, pairwise_iou
from mmpsearch.evaluation.functional.rank_counts import BucketGrid, ThresholdTable
from mmpsearch.evaluation.functional.reference import sklearn_average_precision


def test_average_precision_hand_values():
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.6, 0.3]) == pytest.approx(5 / 6)
    # a tie block enters at once: P = 1/2 at R = 1
    assert average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert average_precision([0, 0], [0.5, 0.1]) == 0.0
    rng = np.random.default_rng(0)
    for _ in range(50):
        y = rng.integers(0, 2, 20)
        y[0] = 1
        s = rng.integers(0, 5, 20) / 4
        assert average_precision(y, s) == pytest.approx(sklearn_average_precision(y, s),
                                                        abs=1e-12)


def test_iou_and_threshold():
    assert pairwise_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(1 / 3)
    assert pairwise_iou([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 0  # no division by zero
    assert match_threshold([[100, 100, 110, 120]])[0] == pytest.approx(1 / 3)
    assert match_threshold([[0, 0, 100, 200]])[0] == 0.5


@pytest.mark.parametrize('dim', [2, 16, 128, 256])
def test_bucket_coordinates_within_one_bucket(dim):
    rng = np.random.default_rng(dim)
    q = rng.standard_normal((64, dim))
    g = rng.standard_normal((500, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    grid = BucketGrid(8192, 1.000001, dim)
    x = grid.bucket_coords(grid.augment_queries(q), grid.augment_gallery(g))
    exact = q @ g.astype(np.float64).T
    # the proven bound holds and the float32 coordinate gives back s within eps
    assert np.abs(x - (exact * grid.scale + grid.offset)).max() <= grid.err_x
    assert np.abs(grid.sims_from_coords(x) - exact).max() <= grid.eps
    assert grid.err_x < 0.5
    assert (np.abs(np.floor(x) - grid.bucket_of(exact)) <= 1).all()


def test_threshold_table_neighbours_brute_force():
    grid = BucketGrid(16, 1.0, 4)
    rng = np.random.default_rng(1)
    for _ in range(300):
        n, k, groups = int(rng.integers(0, 40)), int(rng.integers(0, 12)), 4
        ig = rng.integers(0, groups, n)
        ib = rng.integers(0, grid.num_bins, n)
        tg = rng.integers(0, groups, k)
        tv = np.round(rng.uniform(-1, 1, k) * 8) / 8
        tb = grid.bucket_of(tv)
        want = sorted((i, j) for i in range(n) for j in range(k)
                      if tg[j] == ig[i] and abs(tb[j] - ib[i]) <= 1)
        for lookups in (0, 10**6):  # binary search and dense table
            table = ThresholdTable(tg, tv, grid, groups, lookups=lookups)
            assert np.all(np.diff(table.g * 10 + table.t) >= 0)  # (group, value) order
            pi, pj = table.neighbour_pairs(ig, ib)
            assert sorted(zip(pi.tolist(), table.order[pj].tolist())) == want


def test_reduced_matmul_precision_is_lifted():
    import torch
    rng = np.random.default_rng(0)
    q = rng.standard_normal((16, 64))
    g = rng.standard_normal((300, 64))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    grid = BucketGrid(16384, 1.000001, 64)
    prec = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision('medium')
        x = grid.bucket_coords(grid.augment_queries(q), grid.augment_gallery(g))
        assert torch.get_float32_matmul_precision() == 'medium'
    finally:
        torch.set_float32_matmul_precision(prec)
    grid.check(x, q, g)  # within the bound
    with pytest.raises(RuntimeError, match='float32'):
        grid.check(x + 1.0, q, g)


@pytest.mark.parametrize('amp_dtype', ['bfloat16', 'float16'])
def test_cpu_autocast_is_lifted(amp_dtype):
    """Evaluation called inside a CPU autocast context still runs the float32 GEMM."""
    import torch
    rng = np.random.default_rng(0)
    q = rng.standard_normal((16, 64))
    g = rng.standard_normal((300, 64))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    grid = BucketGrid(16384, 1.000001, 64)
    want = grid.bucket_coords(grid.augment_queries(q), grid.augment_gallery(g))
    with torch.autocast(device_type='cpu', dtype=getattr(torch, amp_dtype)):
        x = grid.bucket_coords(grid.augment_queries(q), grid.augment_gallery(g))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, want)
    grid.check(x, q, g)
