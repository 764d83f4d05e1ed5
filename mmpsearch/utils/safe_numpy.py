# Copyright (c) mmpsearch contributors. All rights reserved.
"""Rebuild pickled numpy arrays, scalars and dtypes as plain data only.

Shared by the checkpoint loader (:mod:`mmpsearch.utils.safe_checkpoint`) and the results
dump loader (:mod:`mmpsearch.evaluation.dump`). A pickle names numpy's reconstruction
functions; the restricted unpicklers hand it these stand-ins instead:

* :func:`reconstruct` (for ``numpy…multiarray._reconstruct``) only makes an empty
  :class:`GuardedArray`, and only when asked for a ``numpy.ndarray``. Its ``__setstate__``
  checks the dtype and the data *before* numpy sees them: an array whose dtype can hold
  Python objects (object, structured or void dtypes, or any dtype whose pickled flags
  claim objects) is never built; it is recorded as refused.
* :func:`scalar` does the same for numpy scalars; :func:`make_dtype` only takes a dtype
  string.
* ``numpy.ndarray`` itself becomes :class:`NdarrayName`, a name that cannot be
  instantiated (the pickle only passes it to ``_reconstruct``).

After unpickling, :func:`finalize` walks the result: guarded arrays become ordinary
``np.ndarray`` s, and a refused value raises :class:`UnsafeValueError` naming the file and
the key that holds it (``records[3].det_embeddings``).
"""
import pickle
import threading
from contextlib import contextmanager
from typing import Any, Callable, Optional

import numpy as np

__all__ = ['UnsafeValueError', 'GuardedArray', 'NdarrayName', 'reconstruct', 'scalar',
           'frombuffer', 'make_dtype', 'guarded_numpy', 'finalize', 'plain_dtype_problem']

_np_core = getattr(np, '_core', None) or np.core  # numpy 2 moved it under np._core
_np_reconstruct = _np_core.multiarray._reconstruct
_np_scalar = _np_core.multiarray.scalar

# bool, signed/unsigned integers, floats, complex, str, bytes: data that holds no objects
_PLAIN_KINDS = frozenset('biufcUS')


class UnsafeValueError(pickle.UnpicklingError):
    """A pickled value that could carry Python objects, or a forbidden construction."""


def plain_dtype_problem(dtype: Any) -> Optional[str]:
    """Why ``dtype`` is not a plain data dtype, or None when it is."""
    if not isinstance(dtype, np.dtype):
        return f'expected a numpy dtype, got {type(dtype).__name__}'
    if dtype.hasobject or dtype.kind not in _PLAIN_KINDS or dtype.fields is not None \
            or dtype.subdtype is not None:
        return (f'dtype {dtype!r} can hold Python objects (object, structured or void '
                'dtype); only plain numeric, bool or string arrays are accepted')
    return None


class _Guard:
    """Per-load record of refused values (id → (value, reason)); keeps them alive."""

    def __init__(self):
        self.refused = {}


_active = threading.local()


@contextmanager
def guarded_numpy():
    """Collect the values refused while unpickling in this thread (see :func:`finalize`)."""
    previous = getattr(_active, 'guard', None)
    guard = _Guard()
    _active.guard = guard
    try:
        yield guard
    finally:
        _active.guard = previous


def _refuse(value: Any, reason: str) -> None:
    guard = getattr(_active, 'guard', None)
    if guard is None:
        raise UnsafeValueError(reason)
    guard.refused[id(value)] = (value, reason)


class NdarrayName:
    """What a pickle's ``numpy.ndarray`` resolves to: a marker, never instantiated."""

    def __new__(cls, *args, **kwargs):
        raise UnsafeValueError('numpy.ndarray may only be named as the class passed to '
                               '_reconstruct; constructing it directly is refused')


class GuardedArray(np.ndarray):
    """An ndarray whose pickled state is checked before numpy reads it."""
    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        raise UnsafeValueError('arrays are only rebuilt from their pickled state')

    def __setstate__(self, state):
        problem = _array_state_problem(state)
        if problem is not None:
            _refuse(self, problem)  # left empty: the object data never enters an array
            return
        np.ndarray.__setstate__(self, state)


def _array_state_problem(state: Any) -> Optional[str]:
    if not isinstance(state, tuple) or len(state) != 5:
        return 'malformed ndarray state'
    version, shape, dtype, is_fortran, data = state
    problem = plain_dtype_problem(dtype)
    if problem is not None:
        return problem
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        return f'malformed ndarray shape {shape!r}'
    if not isinstance(data, (bytes, bytearray)):
        return f'ndarray data must be raw bytes, got {type(data).__name__}'
    if type(version) is not int or type(is_fortran) is not bool:
        return 'malformed ndarray state'
    return None


def reconstruct(subtype: Any, shape: Any, dtype: Any) -> GuardedArray:
    """numpy's ``_reconstruct`` limited to the empty array numpy pickles begin with."""
    if subtype is not NdarrayName:
        raise UnsafeValueError(f'_reconstruct of {subtype!r}: only numpy.ndarray is rebuilt')
    if shape != (0, ):
        raise UnsafeValueError(f'_reconstruct with shape {shape!r}: numpy pickles use (0,)')
    if not isinstance(dtype, (bytes, str)) or len(dtype) > 4:
        raise UnsafeValueError(f'_reconstruct with dtype {dtype!r}')
    return _np_reconstruct(GuardedArray, (0, ), dtype)


class RefusedValue:
    """Stands in for a refused numpy scalar until :func:`finalize` reports it."""
    __slots__ = ()


def scalar(dtype: Any, data: Any = None) -> Any:
    """numpy's ``scalar`` for plain dtypes and raw bytes only."""
    problem = plain_dtype_problem(dtype)
    if problem is None and not isinstance(data, (bytes, bytearray)):
        problem = f'numpy scalar data must be raw bytes, got {type(data).__name__}'
    if problem is not None:
        value = RefusedValue()
        _refuse(value, problem)
        return value
    return _np_scalar(dtype, data)


def frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's ``_frombuffer`` (protocol-5 arrays) for plain dtypes only."""
    problem = plain_dtype_problem(dtype)
    if problem is not None:
        raise UnsafeValueError(problem)
    if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)):
        raise UnsafeValueError(f'_frombuffer of a {type(buf).__name__}')
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def make_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype`` from a dtype string (what numpy pickles), nothing else."""
    if not isinstance(spec, str) or len(spec) > 16:
        raise UnsafeValueError(f'numpy.dtype({spec!r}): only a dtype string is accepted')
    return np.dtype(spec, bool(align), bool(copy))


def plain_dtype_classes() -> list:
    """The ``np.dtypes`` classes of plain data dtypes (their instances get BUILD state)."""
    out = []
    for kind in 'b?BhHiIlLqQefdgFDGUS':
        try:
            out.append(type(np.dtype(kind)))
        except TypeError:
            continue
    return list(dict.fromkeys(out))


def _key(path: str, key: Any) -> str:
    return f'{path}[{key!r}]' if not isinstance(key, str) or not key.isidentifier() \
        else (f'{path}.{key}' if path else key)


def finalize(obj: Any, source: str, guard: _Guard,
             convert: Optional[Callable[[Any, str], Any]] = None) -> Any:
    """Replace guarded arrays by plain ones and raise on anything refused.

    Args:
        obj: the unpickled object.
        source (str): the file, for messages.
        guard: the :func:`guarded_numpy` record of this load.
        convert (callable, optional): ``convert(value, keypath)`` for other stand-in
            types; returns the replacement, or ``NotImplemented`` to walk on.

    Returns:
        The object with plain numpy arrays.

    Raises:
        UnsafeValueError: a refused value, naming ``source`` and its key.
    """
    done = {}

    def walk(x, path):
        ident = id(x)
        if ident in guard.refused:
            raise UnsafeValueError(f'{source}: refusing {path or "the top-level value"}: '
                                   f'{guard.refused[ident][1]}')
        if ident in done:
            return done[ident]
        if convert is not None:
            got = convert(x, path)
            if got is not NotImplemented:
                done[ident] = got
                return got
        if isinstance(x, GuardedArray):
            out = x.view(np.ndarray)
        elif isinstance(x, (RefusedValue, NdarrayName)):
            raise UnsafeValueError(f'{source}: refusing {path}')
        elif isinstance(x, dict):
            done[ident] = x
            for k in list(x):
                walk(k, _key(path, k))
                x[k] = walk(x[k], _key(path, k))
            return x
        elif isinstance(x, list):
            done[ident] = x
            for i, v in enumerate(x):
                x[i] = walk(v, f'{path}[{i}]')
            return x
        elif isinstance(x, tuple):
            items = [walk(v, f'{path}[{i}]') for i, v in enumerate(x)]
            changed = any(a is not b for a, b in zip(items, x))
            out = (type(x)(*items) if hasattr(x, '_fields') else type(x)(items)) \
                if changed else x
        elif isinstance(x, (set, frozenset)):
            for v in x:
                walk(v, f'{path}{{…}}')
            out = x
        else:
            out = x
        done[ident] = out
        return out

    try:
        result = walk(obj, '')
    except RecursionError:
        raise UnsafeValueError(f'{source}: refusing a structure nested too deeply') from None
    if guard.refused:  # a refused value the result does not hold (the pickle dropped it)
        reason = next(iter(guard.refused.values()))[1]
        raise UnsafeValueError(f'{source}: refusing a value in the file: {reason}')
    return result
