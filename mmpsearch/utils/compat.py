# Copyright (c) mmpsearch contributors. All rights reserved.
"""Small, documented compatibility shims for the pinned stack (install.md, corrections).

1. **Safe checkpoint loading.** torch >= 2.6 loads with ``weights_only=True``; mmengine
   0.10.7 checkpoints carry a few non-tensor objects (message-hub ``HistoryBuffer``,
   numpy arrays and scalars, ``slice``, ``getattr(HistoryBuffer, 'min')``). Nothing is
   allow-listed process-wide (allow-listing ``getattr`` or ``HistoryBuffer`` is
   exploitable, install.md correction 2): mmengine's local checkpoint loading is routed
   through :func:`~mmpsearch.utils.safe_checkpoint.safe_torch_load`, which restores those
   objects from plain data with stand-ins registered only during the call. Safe loading
   itself stays on everywhere.
2. **torchvision stand-in.** ``mmpretrain.models`` imports ``torchvision.ops.boxes`` at
   import time (visual-grounding code only); the registries have no CPU torchvision
   for torch 2.13. When a real torchvision cannot be imported, a tiny module with
   ``box_area``/``box_iou`` is registered in ``sys.modules``. A working torchvision
   always wins.
"""
import sys
import types

import torch

from .safe_checkpoint import (CheckpointReadError, UnsafeCheckpointError,
                              install_mmengine_loader, safe_torch_load)

__all__ = ['TORCHVISION_STUBBED', 'safe_torch_load', 'UnsafeCheckpointError',
           'CheckpointReadError', 'install_torchvision_stub']


def _box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _upcast(t):
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def _box_iou(boxes1, boxes2):
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = _upcast(rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (_box_area(boxes1)[:, None] + _box_area(boxes2) - inter)


def install_torchvision_stub():
    """Register a minimal ``torchvision`` unless a real one imports.

    Returns:
        bool: True when the stand-in was installed, False when a real torchvision is used.
    """
    try:
        import torchvision  # noqa: F401
        if not getattr(torchvision, '__mmpsearch_stub__', False):
            return False
        return True
    except Exception:  # absent, or a CUDA build that fails on a CPU torch
        for name in [n for n in sys.modules if n == 'torchvision' or n.startswith('torchvision.')]:
            del sys.modules[name]
    tv = types.ModuleType('torchvision')
    tv.__path__ = []
    tv.__version__ = '0.0.0+mmpsearch.stub'
    tv.__mmpsearch_stub__ = True
    ops = types.ModuleType('torchvision.ops')
    ops.__path__ = []
    boxes = types.ModuleType('torchvision.ops.boxes')
    boxes.box_area, boxes.box_iou, boxes._upcast = _box_area, _box_iou, _upcast
    ops.boxes, ops.box_area, ops.box_iou = boxes, _box_area, _box_iou
    tv.ops = ops
    sys.modules.update({'torchvision': tv, 'torchvision.ops': ops, 'torchvision.ops.boxes': boxes})
    return True


install_mmengine_loader()
TORCHVISION_STUBBED = install_torchvision_stub()
