# Copyright (c) mmpsearch contributors. All rights reserved.
"""Person-search models, by role (backbones, necks, dense heads, RoI heads, losses,
layers, detectors). Importing this package registers every component."""
from . import (backbones, dense_heads, detectors, layers, losses, necks,  # noqa: F401
               roi_heads, utils)
