# Copyright (c) mmpsearch contributors. All rights reserved.
"""Small, documented compatibility shims for the pinned stack (install.md, corrections).

1. **Safe checkpoint loading.** torch >= 2.6 loads with ``weights_only=True``; mmengine
   0.10.7 checkpoints carry a few non-tensor objects (message-hub ``HistoryBuffer``,
   numpy arrays and scalars, ``slice``, ``getattr``). They are allow-listed with
   :func:`torch.serialization.add_safe_globals`; safe loading itself stays on, and a
   checkpoint whose pickle would call anything else is refused by
   :func:`safe_torch_load` with an error naming the file.
2. **torchvision stand-in.** ``mmpretrain.models`` imports ``torchvision.ops.boxes`` at
   import time (visual-grounding code only); the registries have no CPU torchvision
   for torch 2.13. When a real torchvision cannot be imported, a tiny module with
   ``box_area``/``box_iou`` is registered in ``sys.modules``. A working torchvision
   always wins.
"""
import os
import pickle
import sys
import types

import numpy as np
import torch

__all__ = ['TORCHVISION_STUBBED', 'safe_torch_load', 'UnsafeCheckpointError',
           'install_torchvision_stub', 'register_safe_globals']


class UnsafeCheckpointError(pickle.UnpicklingError):
    """Raised when a checkpoint's pickle references objects outside the allow-list."""


def _numpy_safe_globals():
    core = getattr(np, '_core', None) or np.core  # numpy 2 moved it under np._core
    objs = [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in ('UInt8DType', 'UInt16DType', 'UInt32DType', 'UInt64DType', 'Int8DType',
                     'Int16DType', 'Int32DType', 'Int64DType', 'Float16DType', 'Float32DType',
                     'Float64DType', 'BoolDType'):
            if hasattr(dtypes, name):
                objs.append(getattr(dtypes, name))
    return objs


def register_safe_globals():
    """Allow-list what mmengine checkpoints carry (idempotent).

    Returns:
        list: the objects registered.
    """
    objs = _numpy_safe_globals() + [slice, getattr]
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
        objs.append(HistoryBuffer)
    except ImportError:  # mmengine absent: plain torch checkpoints still load
        pass
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(objs)
    return objs


def safe_torch_load(path, map_location='cpu'):
    """``torch.load`` with ``weights_only=True`` and a clear error for unsafe files.

    Args:
        path (str | file-like): checkpoint path or open binary file.
        map_location: forwarded to :func:`torch.load`.

    Returns:
        Any: the loaded object (tensors, plain containers, allow-listed objects).

    Raises:
        UnsafeCheckpointError: the pickle references a global that is not allow-listed
            (for example a ``__reduce__`` payload that would run code).
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        name = getattr(path, 'name', path)
        raise UnsafeCheckpointError(
            f'Refusing to load {name!s}: its pickle references objects outside the safe '
            f'allow-list (loading it could execute code). Details: {err}') from None


def _install_safe_local_loader():
    """Route mmengine's local-path checkpoint loading through :func:`safe_torch_load`."""
    try:
        from mmengine.runner.checkpoint import CheckpointLoader
    except ImportError:
        return

    def load_from_local(filename, map_location):
        filename = os.path.expanduser(filename)
        if not os.path.isfile(filename):
            raise FileNotFoundError(f'{filename} can not be found.')
        return safe_torch_load(filename, map_location=map_location)

    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


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


register_safe_globals()
_install_safe_local_loader()
TORCHVISION_STUBBED = install_torchvision_stub()
