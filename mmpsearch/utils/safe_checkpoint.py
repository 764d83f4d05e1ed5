# Copyright (c) mmpsearch contributors. All rights reserved.
"""Load checkpoints without ever running code from them (docs/design.md, "Loading
artefacts"; install.md, correction 2).

torch's ``weights_only`` unpickler rebuilds tensors and plain containers and refuses every
other global. An mmengine Runner checkpoint also carries mmengine's ``HistoryBuffer``
(message hub), numpy arrays, scalars and dtypes, and ``getattr(HistoryBuffer, 'min')``
-style references to its statistics methods. Allow-listing those objects themselves
process-wide is exploitable: ``getattr`` reaches any attribute (``getattr.__self__`` is the
``builtins`` module, hence ``exec``), and a class whose instances take BUILD state into
their ``__dict__`` lets a pickle set ``__setstate__ = exec`` so that a second BUILD runs
``exec(code)``.

So nothing is allow-listed process-wide. :func:`safe_torch_load` runs torch's
``weights_only`` unpickler with *stand-ins* registered under those names, only for the
duration of the call:

* ``HistoryBuffer`` → :class:`_HistoryBufferState`, a slotted class (no ``__dict__``)
  whose ``__setstate__`` accepts exactly ``max_length``, ``_log_history``,
  ``_count_history`` and the four default ``statistics_methods`` (once); afterwards a real
  ``HistoryBuffer`` is rebuilt from that plain data through its constructor;
* ``getattr`` → :func:`_statistics_method`, which answers only
  ``getattr(HistoryBuffer, 'min' | 'max' | 'current' | 'mean')`` and refuses anything else;
* numpy's ``_reconstruct`` / ``scalar`` / ``ndarray`` / ``dtype`` → the guarded versions
  of :mod:`mmpsearch.utils.safe_numpy` (plain numeric/bool/string data only);
* ``slice`` stays itself.

Anything else, or any misuse of a stand-in, raises :class:`UnsafeCheckpointError` naming
the file; a truncated or foreign file raises :class:`CheckpointReadError` naming it.
mmengine's local-path checkpoint loading (``load_from``, ``resume``,
``load_checkpoint``, inferencers) is routed here by :func:`install_mmengine_loader`;
its remote schemes call ``torch.load`` with torch's default ``weights_only=True``, which
refuses mmengine objects without running them.
"""
import os
import pickle
import re
import threading
from typing import Any

import numpy as np
import torch

from . import safe_numpy

__all__ = ['UnsafeCheckpointError', 'CheckpointReadError', 'safe_torch_load',
           'install_mmengine_loader']


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint's pickle names or builds something outside the safe set; nothing of
    it was executed."""


class CheckpointReadError(RuntimeError):
    """The checkpoint file cannot be read (truncated, corrupt, or not a checkpoint)."""


_STATISTICS = ('min', 'max', 'current', 'mean')  # HistoryBuffer's default statistics
_HB_KEYS = {'max_length', '_log_history', '_count_history', 'statistics_methods'}


class _StatisticsMethodName:
    """What ``getattr(HistoryBuffer, name)`` yields inside a checkpoint: just the name."""
    __slots__ = ('name', )

    def __init__(self, name: str):
        self.name = name


class _HistoryBufferState:
    """Stand-in for mmengine's ``HistoryBuffer`` while unpickling: plain data, set once."""
    __slots__ = ('max_length', 'log_history', 'count_history', 'built')

    def __new__(cls, *args, **kwargs):
        if args or kwargs:
            raise UnsafeCheckpointError('HistoryBuffer is rebuilt from its state only')
        self = object.__new__(cls)
        self.built = False
        return self

    def __setstate__(self, state: Any) -> None:
        if self.built:
            raise UnsafeCheckpointError('a second BUILD on one HistoryBuffer (state injection)')
        if not isinstance(state, dict) or not set(state) <= _HB_KEYS:
            extra = sorted(map(repr, set(state) - _HB_KEYS)) if isinstance(state, dict) else \
                [type(state).__name__]
            raise UnsafeCheckpointError(f'HistoryBuffer state with unexpected entries {extra}')
        methods = state.get('statistics_methods', {})
        if not isinstance(methods, dict) or any(
                type(v) is not _StatisticsMethodName or k != v.name for k, v in methods.items()):
            raise UnsafeCheckpointError('HistoryBuffer statistics_methods must name the '
                                        f'default methods {_STATISTICS} only')
        max_length = state.get('max_length', 1000000)
        if type(max_length) is not int or max_length <= 0:
            raise UnsafeCheckpointError(f'HistoryBuffer max_length {max_length!r}')
        arrays = []
        for key in ('_log_history', '_count_history'):
            arr = state.get(key)
            if type(arr) is not safe_numpy.GuardedArray or arr.ndim != 1 \
                    or arr.dtype.kind not in 'biuf':
                raise UnsafeCheckpointError(f'HistoryBuffer {key} must be a 1-D numeric array')
            arrays.append(arr)
        if len(arrays[0]) != len(arrays[1]):
            raise UnsafeCheckpointError('HistoryBuffer histories differ in length')
        self.max_length = max_length
        self.log_history, self.count_history = arrays
        self.built = True


def _statistics_method(obj: Any, name: Any, *default: Any) -> _StatisticsMethodName:
    """The only ``getattr`` a checkpoint may call: a HistoryBuffer statistics method."""
    if obj is _HistoryBufferState and name in _STATISTICS and not default:
        return _StatisticsMethodName(name)
    target = 'HistoryBuffer' if obj is _HistoryBufferState else type(obj).__name__
    raise UnsafeCheckpointError(f'getattr({target}, {name!r}) is refused: a checkpoint may '
                                'only name HistoryBuffer statistics methods')


def _stand_ins() -> list:
    """(object, pickle name) pairs registered during :func:`safe_torch_load` only."""
    pairs = [(_HistoryBufferState, 'mmengine.logging.history_buffer.HistoryBuffer'),
             (_statistics_method, 'builtins.getattr'),
             (slice, 'builtins.slice'),
             (safe_numpy.NdarrayName, 'numpy.ndarray'),
             (safe_numpy.make_dtype, 'numpy.dtype')]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        pairs += [(safe_numpy.reconstruct, f'{module}._reconstruct'),
                  (safe_numpy.scalar, f'{module}.scalar')]
    # Classes whose instances receive BUILD state. A pickle GLOBAL always reads as
    # "module.name", so these dot-free keys cannot be named by a file.
    pairs.append((safe_numpy.GuardedArray, 'mmpsearch-guarded-ndarray'))
    for cls in safe_numpy.plain_dtype_classes():
        pairs.append((cls, f'mmpsearch-dtype-{cls.__name__}'))
    return pairs


_LOCK = threading.RLock()  # the stand-ins are registered in torch's global table meanwhile


def _convert(x: Any, path: str) -> Any:
    """Stand-ins → real objects (for :func:`safe_numpy.finalize`)."""
    if type(x) is _HistoryBufferState:
        if not x.built:
            raise UnsafeCheckpointError(f'{path}: a HistoryBuffer without state')
        from mmengine.logging.history_buffer import HistoryBuffer
        return HistoryBuffer(x.log_history.view(np.ndarray), x.count_history.view(np.ndarray),
                             x.max_length)
    if type(x) is _StatisticsMethodName:
        raise UnsafeCheckpointError(f'{path}: a getattr result outside a HistoryBuffer')
    if isinstance(x, torch.Tensor):
        attrs = getattr(x, '__dict__', None)
        if attrs:  # tensor subclasses / parameters may carry python attributes
            for k in list(attrs):
                if isinstance(attrs[k], (safe_numpy.GuardedArray, _HistoryBufferState,
                                         _StatisticsMethodName, safe_numpy.RefusedValue)):
                    raise UnsafeCheckpointError(f'{path}: tensor attribute {k!r}')
        return x
    return NotImplemented


_TORCH_ADVICE = re.compile(r'WeightsUnpickler error: (.*?)(?:\n\nCheck the documentation|$)',
                           re.S)


def _reason(err: BaseException) -> str:
    text = str(err)
    found = _TORCH_ADVICE.search(text)
    return (found.group(1) if found else text).strip()


def safe_torch_load(path, map_location='cpu'):
    """``torch.load(weights_only=True)`` that also reads mmengine Runner checkpoints.

    Args:
        path (str | os.PathLike | file-like): checkpoint path or open binary file.
        map_location: forwarded to :func:`torch.load`.

    Returns:
        Any: the loaded object (tensors, plain containers, numpy arrays and scalars,
        ``slice``, mmengine ``HistoryBuffer`` rebuilt from plain data).

    Raises:
        UnsafeCheckpointError: the pickle names a global outside the safe set, or uses a
            stand-in in a way mmengine never does (the file would run code or tamper
            with objects); nothing from it was executed.
        CheckpointReadError: the file is truncated, corrupt or not a checkpoint.
        FileNotFoundError: no such file.
    """
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else getattr(
        path, 'name', repr(path))
    with _LOCK, safe_numpy.guarded_numpy() as guard, \
            torch.serialization.safe_globals(_stand_ins()):
        try:
            obj = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as err:
            if _reason(err).startswith('Unsupported operand'):  # not pickle data we know
                raise CheckpointReadError(
                    f'Cannot read checkpoint {name}: {_reason(err)} (the file is corrupt or '
                    'not a PyTorch checkpoint; nothing from it was run)') from None
            raise UnsafeCheckpointError(
                f'Refusing to load {name}: its pickle references or builds objects outside '
                f'the safe set (loading it could execute code; nothing was run). Reason: '
                f'{_reason(err)}') from None
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            raise
        except Exception as err:  # truncated zip, garbage, a stand-in fed odd arguments
            raise CheckpointReadError(
                f'Cannot read checkpoint {name}: {type(err).__name__}: {_reason(err)} (the '
                'file is truncated, corrupt, or not a PyTorch checkpoint)') from err
        try:
            return safe_numpy.finalize(obj, str(name), guard, _convert)
        except pickle.UnpicklingError as err:
            raise UnsafeCheckpointError(f'Refusing to load {name}: {err}') from None


def install_mmengine_loader() -> None:
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
