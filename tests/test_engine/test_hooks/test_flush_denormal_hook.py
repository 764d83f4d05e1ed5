# Copyright (c) mmpsearch contributors. All rights reserved.
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmpsearch.engine.hooks import FlushDenormalHook
from mmpsearch.registry import HOOKS
from tests.test_engine.test_runner_smoke import _cfg

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def _denormal_product() -> float:
    # 1e-30 * 1e-10 = 1e-40 is below float32's smallest normal number (1.18e-38)
    return float(torch.tensor([1e-30]) * torch.tensor([1e-10]))


@HOOKS.register_module(force=True)
class _RecordDenormalHook(Hook):
    """Records, inside the run, whether a denormal product survives."""
    seen = []

    def before_train(self, runner):
        _RecordDenormalHook.seen.append(_denormal_product())


def test_flushes_during_the_run_and_restores_after(tmp_path):
    if not torch.set_flush_denormal(True):
        pytest.skip('this CPU cannot flush denormals (no SSE3)')
    torch.set_flush_denormal(False)
    assert _denormal_product() > 0  # PyTorch's default keeps denormals
    _RecordDenormalHook.seen.clear()
    cfg = _cfg(tmp_path, max_iters=1)
    cfg['custom_hooks'] = [dict(type='FlushDenormalHook'), dict(type='_RecordDenormalHook')]
    Runner.from_cfg(cfg).train()
    assert _RecordDenormalHook.seen == [0.0]
    assert _denormal_product() > 0  # after_run restored the default


def test_disabled_hook_changes_nothing(tmp_path):
    _RecordDenormalHook.seen.clear()
    cfg = _cfg(tmp_path, max_iters=1)
    cfg['custom_hooks'] = [dict(type='FlushDenormalHook', enable=False),
                           dict(type='_RecordDenormalHook')]
    Runner.from_cfg(cfg).train()
    assert _RecordDenormalHook.seen[0] > 0


def test_default_runtime_registers_it():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'default_runtime.py'))
    assert cfg.default_hooks.flush_denormal.type == 'FlushDenormalHook'
    hook = HOOKS.build(cfg.default_hooks.flush_denormal)
    assert isinstance(hook, FlushDenormalHook) and hook.enable
