# Copyright (c) mmpsearch contributors. All rights reserved.
"""Identical detection embeddings get bit-identical float64 similarities wherever they
sit among the pairs computed together (a BLAS gemv sums a row in an order that depends
on its position), so a tie is ranked by the tie order, not by rounding."""
import numpy as np
import pytest

from mmpsearch.evaluation.functional.search import _ExactSims


@pytest.mark.parametrize('num,dim', [(5, 64), (17, 64), (33, 128), (2, 2048), (301, 256)])
def test_identical_columns_tie(num, dim):
    rng = np.random.default_rng(num)
    feats = rng.standard_normal((num, dim)).astype(np.float32)
    feats[-1] = feats[0]
    q64 = rng.standard_normal((2, dim))
    sims = _ExactSims(q64, feats, num)
    cols = np.arange(num)
    for row in (0, 1):
        vals = sims.get(np.full(num, row), cols, cache=False)
        assert vals[0] == vals[-1]
        # and the same value as the pair computed alone
        assert sims.get(np.array([row]), np.array([num - 1]), cache=False)[0] == vals[0]
