# Copyright (c) mmpsearch contributors. All rights reserved.
from . import compat
from .compat import UnsafeCheckpointError, safe_torch_load
from .setup_env import register_all_modules

__all__ = ['compat', 'safe_torch_load', 'UnsafeCheckpointError', 'register_all_modules']
