# Copyright (c) mmpsearch contributors. All rights reserved.
"""Checkpoint the random number generators, so a resumed run continues bit for bit.

mmengine's resume restores the model, optimiser, schedulers and loop counters, and seeds
the generators again from ``randomness.seed``: the resumed epoch then draws other random
numbers than the uninterrupted run did (anchor and pair sampling, drop path, the
dataloader's base seed). This hook stores the main process's Python, NumPy and PyTorch
(CPU and CUDA) generator states in ``checkpoint['meta']['rng_state']`` and restores them
when a run *resumes* from such a checkpoint (``load_from`` without resume leaves them
alone). With ``persistent_workers=False`` the dataloader workers are re-seeded every epoch
from the runner's seed, so a run killed and resumed from the last epoch checkpoint repeats
the uninterrupted run exactly (docs/pretraining.md shows the check).
"""
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from mmpsearch.registry import HOOKS

__all__ = ['RNGStateHook']


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the generator states with every checkpoint and restore them on resume."""

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state = dict(python=random.getstate(),
                     numpy=(kind, torch.from_numpy(keys.astype(np.int64)), int(pos),
                            int(has_gauss), float(gauss)),
                     torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint.setdefault('meta', {})['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('meta', {}).get('rng_state')
        if state is None or not getattr(runner, '_resume', False):
            return
        random.setstate(_as_tuple(state['python']))
        kind, keys, pos, has_gauss, gauss = state['numpy']
        np.random.set_state((kind, np.asarray(keys, np.int64).astype(np.uint32), int(pos),
                             int(has_gauss), float(gauss)))
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])


def _as_tuple(value):
    """Python's generator state as ``random.setstate`` wants it (tuples, not lists)."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value
