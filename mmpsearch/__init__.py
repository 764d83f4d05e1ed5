# Copyright (c) mmpsearch contributors. All rights reserved.
"""mmpsearch: person search for MMDetection 3.x.

The compatibility layer is imported first: it installs the torchvision stand-in (only
when no real torchvision imports) before anything pulls in ``mmpretrain.models``, and
routes mmengine's checkpoint loading through the safe loader (nothing is allow-listed
process-wide; docs/design.md, "Loading artefacts").
"""
from .utils import compat  # noqa: F401  (must stay first)
from .version import __version__

__all__ = ['__version__']
