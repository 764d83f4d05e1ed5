# Copyright (c) mmpsearch contributors. All rights reserved.
from . import compat
from .compat import CheckpointReadError, UnsafeCheckpointError, safe_torch_load
from .denormal import set_flush_denormal_all_threads
from .setup_env import register_all_modules

__all__ = ['compat', 'safe_torch_load', 'UnsafeCheckpointError', 'CheckpointReadError',
           'register_all_modules',
           'set_flush_denormal_all_threads']
