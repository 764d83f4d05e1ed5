# Copyright (c) mmpsearch contributors. All rights reserved.
"""Small synthetic raw data sets (PRW and CUHK-SYSU layouts), generated once per session."""
import shutil

import pytest

from mmpsearch.datasets.synthetic import SyntheticConfig, generate_world

SMALL = SyntheticConfig(image_size=(192, 144), num_cameras=3, num_train_frames=40,
                        num_test_frames=30, num_train_ids=8, num_test_ids=6,
                        gallery_sizes=(10, 20), long_tail=5.0)


@pytest.fixture(scope='session')
def small_world():
    return generate_world(SMALL, seed=3)


@pytest.fixture(scope='session')
def prw_root(tmp_path_factory, small_world):
    from mmpsearch.datasets._synthetic_writers import write_prw
    root = tmp_path_factory.mktemp('prw')
    summary = write_prw(small_world, str(root))
    return str(root), summary


@pytest.fixture(scope='session')
def cuhk_root(tmp_path_factory, small_world):
    from mmpsearch.datasets._synthetic_writers import write_cuhk
    root = tmp_path_factory.mktemp('cuhk')
    summary = write_cuhk(small_world, str(root))
    return str(root), summary


@pytest.fixture
def prw_copy(tmp_path, prw_root):
    """A private copy of the PRW set, for tests that damage files."""
    dst = tmp_path / 'prw'
    shutil.copytree(prw_root[0], dst)
    return str(dst)


@pytest.fixture
def cuhk_copy(tmp_path, cuhk_root):
    """A private copy of the CUHK-SYSU set, for tests that damage files."""
    dst = tmp_path / 'cuhk'
    shutil.copytree(cuhk_root[0], dst)
    return str(dst)
