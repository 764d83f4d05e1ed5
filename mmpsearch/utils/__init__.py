# Copyright (c) mmpsearch contributors. All rights reserved.
from . import compat
from .compat import CheckpointReadError, UnsafeCheckpointError, safe_torch_load
from .denormal import set_flush_denormal_all_threads
from .dist_compat import (adapt_cfg_to_cpu_distributed, cuda_usable,
                          install_cpu_dist_guard)
from .setup_env import ensure_default_scope, register_all_modules

# mmengine's launcher calls torch.cuda.set_device even with gloo: guard it on CPU hosts
install_cpu_dist_guard()

__all__ = ['compat', 'safe_torch_load', 'UnsafeCheckpointError', 'CheckpointReadError',
           'register_all_modules', 'set_flush_denormal_all_threads',
           'adapt_cfg_to_cpu_distributed', 'install_cpu_dist_guard', 'cuda_usable',
           'ensure_default_scope']
