# Copyright (c) mmpsearch contributors. All rights reserved.
"""Where the original data-set files are (never part of the repository).

They are looked up in ``$MMPSEARCH_REAL_DATA`` if set, else in ``<repo>/../shared/real``
(where CI keeps them). A test that needs one is skipped, with the path it tried, only
when the file is absent.
"""
import os
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def real_data_root() -> str:
    """The folder holding the original files (it may not exist)."""
    return os.environ.get('MMPSEARCH_REAL_DATA') or osp.normpath(
        osp.join(REPO, '..', 'shared', 'real'))


def real_file(*parts: str) -> str:
    """Path of an original file; skips the calling test, saying where it looked, if absent.
    """
    path = osp.join(real_data_root(), *parts)
    if not osp.isfile(path):
        pytest.skip(f'original data file not found: {path} (set MMPSEARCH_REAL_DATA to '
                    'the folder holding cuhk_sysu/ and prw_alignps/, or put it at '
                    '<repo>/../shared/real as CI does)')
    return path
