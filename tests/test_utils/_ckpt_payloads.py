# Copyright (c) mmpsearch contributors. All rights reserved.
"""Hostile checkpoints for the loader tests: real Runner checkpoints with a payload spliced
into their pickle.

The payloads are written as raw pickle opcodes (protocol 2, only opcodes torch's
``weights_only`` unpickler understands), so they reach exactly the code paths an attacker's
file reaches. Each executing payload writes a marker file; a test asserts it is absent.
:func:`save_with_payloads` re-saves a loaded checkpoint with :func:`torch.save`, replacing
every :class:`RawPickle` value by its opcodes: the file keeps its real weights, optimiser
state, message hub and metadata.
"""
import io
import pickle
import struct

import torch

_HB = ('mmengine.logging.history_buffer', 'HistoryBuffer')


class RawPickle:
    """A value that :func:`save_with_payloads` writes as the given pickle opcodes."""

    def __init__(self, ops: bytes, name: str):
        self.ops = ops
        self.name = name

    def __repr__(self):
        return f'RawPickle({self.name})'


class _RawPickler(pickle._Pickler):  # the pure-Python pickler lets ``save`` be extended

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, RawPickle):
            self.write(obj.ops)
            return
        super().save(obj, save_persistent_id)


class _RawPickleModule:
    """A ``pickle_module`` for :func:`torch.save` that emits :class:`RawPickle` verbatim."""
    Pickler = _RawPickler
    Unpickler = pickle.Unpickler
    __name__ = 'raw_pickle'


def save_with_payloads(ckpt, path) -> None:
    """``torch.save`` (zip format, protocol 2) with :class:`RawPickle` values spliced in."""
    torch.save(ckpt, path, pickle_module=_RawPickleModule, pickle_protocol=2)


# -- opcode builders (protocol 2) ------------------------------------------------------
def _global(module: str, name: str) -> bytes:
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def _str(s: str) -> bytes:
    data = s.encode()
    return b'X' + struct.pack('<I', len(data)) + data


TUPLE1, TUPLE2, REDUCE, BUILD = b'\x85', b'\x86', b'R', b'b'
EMPTY_TUPLE, EMPTY_DICT, NEWOBJ, SETITEM = b')', b'}', b'\x81', b's'


def builtins_via_getattr() -> bytes:
    """``getattr(getattr, '__self__')``: the ``builtins`` module, through ``getattr`` only."""
    return (_global('builtins', 'getattr') + _global('builtins', 'getattr') + _str('__self__')
            + TUPLE2 + REDUCE)


def exec_via_getattr() -> bytes:
    """``getattr(getattr(getattr, '__self__'), 'exec')``: ``exec`` without naming it."""
    return (_global('builtins', 'getattr') + builtins_via_getattr() + _str('exec') + TUPLE2
            + REDUCE)


def marker_code(marker) -> str:
    return f'open({str(marker)!r}, "w").write("payload ran")'


def history_buffer_setstate_exec(marker) -> RawPickle:
    """A ``HistoryBuffer`` whose first BUILD puts ``__setstate__ = exec`` into its
    ``__dict__``; the second BUILD then calls ``exec(code)``."""
    ops = (_global(*_HB) + EMPTY_TUPLE + NEWOBJ
           + EMPTY_DICT + _str('__setstate__') + exec_via_getattr() + SETITEM + BUILD
           + _str(marker_code(marker)) + BUILD)
    return RawPickle(ops, 'HistoryBuffer __setstate__=exec')


def history_buffer_setstate_allowed_callable() -> RawPickle:
    """``__setstate__`` injection without ``getattr``: the injected callable is one that
    torch allow-lists by default (``_codecs.encode``); the second BUILD calls it."""
    ops = (_global(*_HB) + EMPTY_TUPLE + NEWOBJ
           + EMPTY_DICT + _str('__setstate__') + _global('_codecs', 'encode') + SETITEM + BUILD
           + _str('state') + BUILD)
    return RawPickle(ops, 'HistoryBuffer __setstate__=_codecs.encode')


def history_buffer_statistics_pollution() -> RawPickle:
    """A ``HistoryBuffer`` state whose ``statistics_methods`` maps ``'mean'`` to ``exec``:
    mmengine's ``__setstate__`` merges it into the class-level table (every buffer of the
    process would then call ``exec`` for ``statistics('mean')``)."""
    ops = (_global(*_HB) + EMPTY_TUPLE + NEWOBJ
           + EMPTY_DICT + _str('statistics_methods')
           + EMPTY_DICT + _str('mean') + exec_via_getattr() + SETITEM
           + SETITEM + BUILD)
    return RawPickle(ops, 'HistoryBuffer statistics_methods pollution')


def getattr_chain() -> RawPickle:
    """``builtins`` reached through a ``getattr`` chain (a first step to anything)."""
    return RawPickle(builtins_via_getattr(), 'getattr chain')


class ReduceSystem:
    """A plain ``__reduce__`` payload: ``os.system('touch MARKER')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return (os.system, (f'touch {self.marker}',))


def numpy1_scalar_ops(value: float) -> RawPickle:
    """A float64 scalar as numpy 1.x pickles it (``numpy.core.multiarray`` names)."""
    ops = (_global('numpy.core.multiarray', 'scalar')
           + _global('numpy', 'dtype') + _str('f8') + b'\x89' + b'\x88' + b'\x87' + REDUCE
           + b'(' + b'K\x03' + _str('<') + b'NNN' + b'J\xff\xff\xff\xff' + b'J\xff\xff\xff\xff'
           + b'K\x00' + b't' + BUILD
           + _global('_codecs', 'encode') + _str(struct.pack('<d', value).decode('latin1'))
           + _str('latin1') + TUPLE2 + REDUCE
           + TUPLE2 + REDUCE)
    return RawPickle(ops, 'numpy 1.x float64 scalar')


def pickle_bytes(obj) -> bytes:
    buf = io.BytesIO()
    _RawPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()
