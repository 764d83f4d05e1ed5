# Copyright (c) mmpsearch contributors. All rights reserved.
"""Runner-side pieces: hooks, loops and the optimiser constructor."""
from .hooks import *  # noqa: F401,F403
from .loops import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
