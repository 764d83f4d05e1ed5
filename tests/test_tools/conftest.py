# Copyright (c) mmpsearch contributors. All rights reserved.
"""Public entry points are tested without the session's default scope: they must enter
the ``mmpsearch`` scope themselves, as in a user's fresh process."""
import pytest


@pytest.fixture(autouse=True, scope='module')
def _no_default_scope(without_default_scope):
    yield
