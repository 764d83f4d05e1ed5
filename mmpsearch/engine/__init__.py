# Copyright (c) mmpsearch contributors. All rights reserved.
"""Runner-side pieces: hooks and loops."""
from .hooks import *  # noqa: F401,F403
from .loops import *  # noqa: F401,F403
