# Copyright (c) mmpsearch contributors. All rights reserved.
"""Runner-side pieces: hooks."""
from .hooks import *  # noqa: F401,F403
