# Copyright (c) mmpsearch contributors. All rights reserved.
"""RNGStateHook: generator states travel in the checkpoint (through safe loading) and come
back on resume only."""
import random

import numpy as np
import torch

from mmpsearch.engine.hooks import RNGStateHook
from mmpsearch.utils import safe_torch_load


class _Runner:
    def __init__(self, resume):
        self._resume = resume


def _draw():
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_resume_repeats_the_draws(tmp_path):
    hook = RNGStateHook()
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    ckpt = dict(meta=dict(epoch=1))
    hook.before_save_checkpoint(_Runner(True), ckpt)
    torch.save(ckpt, tmp_path / 'epoch_1.pth')
    first = _draw()
    loaded = safe_torch_load(str(tmp_path / 'epoch_1.pth'))  # weights-only loading
    hook.after_load_checkpoint(_Runner(True), loaded)
    assert _draw() == first
    # load_from without resume leaves the generators alone
    hook.after_load_checkpoint(_Runner(False), loaded)
    assert _draw() != first
    hook.after_load_checkpoint(_Runner(True), dict(meta={}))  # an older checkpoint: no-op
