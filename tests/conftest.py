# Copyright (c) mmpsearch contributors. All rights reserved.
"""Test-wide set-up: the working tree's mmpsearch wins over an installed copy, and every
test runs in the ``mmpsearch`` default scope on the CPU.

The session-wide scope serves the unit tests (models and datasets built from config
dicts). Public entry points must not need it: tests/test_apis and tests/test_tools take
it away (``without_default_scope``), and run the tools in fresh interpreters.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # noqa: E402
import torch  # noqa: E402

import mmpsearch  # noqa: E402,F401

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True, scope='session')
def _mmpsearch_scope():
    from mmpsearch.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    yield


@pytest.fixture(scope='module')
def without_default_scope():
    """No default registry scope for the module's tests, as in a user's fresh process."""
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict
    DefaultScope._instance_dict = type(saved)()
    yield
    DefaultScope._instance_dict = saved
