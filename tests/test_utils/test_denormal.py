# Copyright (c) mmpsearch contributors. All rights reserved.
import pytest
import torch

from mmpsearch.utils import set_flush_denormal_all_threads
from mmpsearch.utils.denormal import openmp_runtime_path


def _nonzero_denormal_products(num: int = 1 << 20) -> int:
    # Large enough for PyTorch to split the multiplication across its OpenMP threads;
    # 1e-30 * 1e-10 = 1e-40 is a float32 denormal.
    a = torch.full((num, ), 1e-30)
    b = torch.full((num, ), 1e-10)
    return int(((a * b) != 0).sum())


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    _nonzero_denormal_products()  # the OpenMP pool exists before the mode is set
    yield
    set_flush_denormal_all_threads(False)
    torch.set_num_threads(before)


def test_reaches_every_openmp_thread(two_threads):
    if not torch.set_flush_denormal(False):
        pytest.skip('this CPU cannot flush denormals (no SSE3)')
    n = 1 << 20
    assert _nonzero_denormal_products(n) == n
    # torch.set_flush_denormal alone leaves the worker thread's part of the product
    torch.set_flush_denormal(True)
    assert 0 < _nonzero_denormal_products(n) < n
    assert set_flush_denormal_all_threads(True)
    assert _nonzero_denormal_products(n) == 0
    assert set_flush_denormal_all_threads(False)
    assert _nonzero_denormal_products(n) == n


def test_finds_the_runtime_torch_loaded():
    path = openmp_runtime_path()
    if torch.backends.openmp.is_available():
        assert path is not None and 'omp' in path
