# Copyright (c) mmpsearch contributors. All rights reserved.
"""Multi-process training and testing on the CPU (gloo) with mmengine 0.10.7.

mmengine's distributed path assumes a GPU per process in two places; both are adapted
here rather than forked (docs/design.md, "Distributed runs on the CPU"):

1. ``mmengine.dist.utils._init_dist_pytorch`` calls ``torch.cuda.set_device(LOCAL_RANK)``
   before ``init_process_group`` whatever the backend, which raises on a CPU build of
   torch (and would pick a device nobody uses on a CPU-only run of a CUDA build).
   :func:`install_cpu_dist_guard` wraps it: when CUDA is unavailable the call is skipped
   and NCCL, which needs GPUs, is replaced by gloo with a warning. With CUDA (or another
   accelerator mmengine knows) the original function runs unchanged.
2. ``Runner.wrap_model`` builds ``MMDistributedDataParallel`` with
   ``device_ids=[LOCAL_RANK]``, which DDP refuses for a module on the CPU.
   :func:`adapt_cfg_to_cpu_distributed`, called by ``tools/train.py`` and
   ``tools/test.py``, chooses the backend in ``env_cfg.dist_cfg`` (gloo when CUDA is
   unavailable) and sets ``device_ids=None`` in ``model_wrapper_cfg``.

Nothing changes for single-process runs or runs with CUDA.
"""
import functools
import warnings

import torch

__all__ = ['install_cpu_dist_guard', 'adapt_cfg_to_cpu_distributed', 'cuda_usable']


def cuda_usable() -> bool:
    """Whether this process can use a CUDA device (CPU builds and GPU-less hosts: no)."""
    return torch.cuda.is_available()


def _other_accelerator() -> bool:
    """An accelerator whose own branch in mmengine's ``_init_dist_pytorch`` must run."""
    from mmengine.device import is_mlu_available, is_musa_available, is_npu_available
    return is_mlu_available() or is_npu_available() or is_musa_available()


def install_cpu_dist_guard() -> bool:
    """Guard mmengine's ``torch.cuda.set_device`` call on hosts without CUDA (idempotent).

    Returns:
        bool: True when the guard is (now) installed.
    """
    try:
        from mmengine.dist import utils as dist_utils
    except ImportError:  # no mmengine: nothing to guard
        return False
    original = dist_utils._init_dist_pytorch
    if getattr(original, '__mmpsearch_cpu_guard__', False):
        return True

    @functools.wraps(original)
    def init_dist_pytorch(backend='nccl', init_backend='torch', **kwargs):
        if cuda_usable() or init_backend != 'torch' or _other_accelerator():
            return original(backend, init_backend=init_backend, **kwargs)
        if backend == 'nccl':
            warnings.warn('CUDA is not available: the distributed backend is gloo instead '
                          'of nccl (set env_cfg.dist_cfg.backend to choose another)')
            backend = 'gloo'
        # mmengine's own CUDA branch, without torch.cuda.set_device
        torch.distributed.init_process_group(backend=backend, **kwargs)

    init_dist_pytorch.__mmpsearch_cpu_guard__ = True
    dist_utils._init_dist_pytorch = init_dist_pytorch
    return True


def adapt_cfg_to_cpu_distributed(cfg):
    """Make a config's distributed settings work on the CPU (in place; no-op with CUDA or
    without a launcher).

    * ``env_cfg.dist_cfg.backend``: ``'nccl'`` (or unset) becomes ``'gloo'``;
    * ``model_wrapper_cfg``: ``device_ids=None`` (DDP over CPU modules takes no device
      ids); the other wrapper settings keep the Runner's defaults
      (``broadcast_buffers=False``, ``find_unused_parameters`` from the config).

    Args:
        cfg (Config): a full config with ``launcher`` set.

    Returns:
        Config: ``cfg``.
    """
    if cfg.get('launcher', 'none') == 'none' or cuda_usable():
        return cfg
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg', None)
    if wrapper is None:
        wrapper = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                       find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return cfg
