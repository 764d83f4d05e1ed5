# Copyright (c) mmpsearch contributors. All rights reserved.
"""The CPU distributed shim: config adaptation and the ``set_device`` guard (the real
2-process run is tests/test_tools/test_dist_cpu.py)."""
import pytest
from mmengine.config import Config

from mmpsearch.utils import dist_compat


def test_config_adapted_only_for_a_launcher_without_cuda(monkeypatch):
    monkeypatch.setattr(dist_compat, 'cuda_usable', lambda: False)
    cfg = Config(dict(launcher='none', env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    dist_compat.adapt_cfg_to_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'nccl' and 'model_wrapper_cfg' not in cfg
    cfg.launcher = 'pytorch'
    cfg.find_unused_parameters = True
    dist_compat.adapt_cfg_to_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel', device_ids=None,
                                         broadcast_buffers=False, find_unused_parameters=True)
    # a backend the config chose is kept; so is its wrapper (without device ids)
    cfg = Config(dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='mpi')),
                      model_wrapper_cfg=dict(type='MMDistributedDataParallel',
                                             detect_anomalous_params=True)))
    dist_compat.adapt_cfg_to_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'mpi'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model_wrapper_cfg.detect_anomalous_params
    # with CUDA nothing changes
    monkeypatch.setattr(dist_compat, 'cuda_usable', lambda: True)
    cfg = Config(dict(launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    dist_compat.adapt_cfg_to_cpu_distributed(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'nccl' and 'model_wrapper_cfg' not in cfg


def test_set_device_guard(monkeypatch):
    from mmengine.dist import utils as dist_utils
    assert dist_utils._init_dist_pytorch.__mmpsearch_cpu_guard__
    assert dist_compat.install_cpu_dist_guard()  # idempotent
    calls = []
    monkeypatch.setattr(dist_compat, 'cuda_usable', lambda: False)
    monkeypatch.setattr('torch.distributed.init_process_group',
                        lambda backend, **kw: calls.append((backend, kw)))
    monkeypatch.setattr('torch.cuda.set_device',
                        lambda *a: pytest.fail('set_device called without CUDA'))
    with pytest.warns(UserWarning, match='gloo instead of nccl'):
        dist_utils._init_dist_pytorch('nccl', timeout=5)
    dist_utils._init_dist_pytorch('gloo')
    assert calls == [('gloo', dict(timeout=5)), ('gloo', {})]
