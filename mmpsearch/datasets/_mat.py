# Copyright (c) mmpsearch contributors. All rights reserved.
"""scipy ``loadmat``/``savemat`` helpers for the CUHK-SYSU and PRW raw files.

Reading follows ``shared/spec/raw_formats.md`` §2.1 (default ``loadmat``: strings are (1,)
``<U`` arrays; integer-valued boxes come back as uint8 or uint16 *per box*, an absent box as
a (1, 0) float64; 1×N structs are structured arrays; N×1 cells object arrays). Every leaf
is cast to a wide integer before any arithmetic, because ``x + w`` on uint8 storage wraps
(§0.2). Every failure becomes a :class:`MatFormatError` that names the file.

Writing (the synthetic data set) builds values with the same ``loadmat`` signature (§5):
:func:`mat_num` picks the storage MATLAB picks for an integer-valued double (uint8 when
every value is ≤ 255, else uint16), :func:`struct_row` builds 1×N struct arrays,
:func:`cell_column` N×1 cells, :func:`mat_empty` the 1×0 "absent" box. :func:`save_mat`
writes them with scipy's ``savemat`` (PRW files); :func:`._mat_writer.save_matlab` writes
them byte for byte as MATLAB wrote the original CUHK-SYSU files.
"""
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
import scipy.io as sio


class MatFormatError(ValueError):
    """A raw annotation file exists but does not have the documented structure."""


def load_mat(path: str, squeeze: bool = False) -> Dict[str, Any]:
    """Load a MATLAB v5 file with scipy defaults, with errors that name the file.

    Args:
        path (str): the ``.mat`` file.
        squeeze (bool): pass ``squeeze_me`` to ``loadmat`` (only for plain numeric files).

    Returns:
        dict: variable name → value, without the ``__header__``-style entries.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'annotation file not found: {path}')
    try:
        mdict = sio.loadmat(path, squeeze_me=squeeze)
    except NotImplementedError as e:  # scipy's message for HDF5-based v7.3 files
        raise MatFormatError(f'{path}: MATLAB v7.3 (HDF5) files are not supported; '
                             f'the official files are v5/v7 ({e})') from e
    except Exception as e:  # noqa: BLE001  (scipy raises many types on bad bytes)
        raise MatFormatError(f'{path}: not a readable MATLAB v5 file '
                             f'({type(e).__name__}: {e})') from e
    return {k: v for k, v in mdict.items() if not k.startswith('__')}


def get_var(mdict: Dict[str, Any], path: str, names: Optional[Sequence[str]] = None) -> Any:
    """Return the first of ``names`` present in ``mdict`` (or its only variable).

    Args:
        mdict (dict): output of :func:`load_mat`.
        path (str): file name, for the error message.
        names (Sequence[str], optional): accepted variable names in order of preference
            (PRW annotations: ``box_new``, ``anno_file``, ``anno_previous``). ``None``
            accepts a file with exactly one variable (raw_formats.md D13).

    Returns:
        Any: the variable's value.
    """
    if names is None:
        if len(mdict) != 1:
            raise MatFormatError(f'{path}: expected exactly one variable, found '
                                 f'{sorted(mdict)}')
        return next(iter(mdict.values()))
    for name in names:
        if name in mdict:
            return mdict[name]
    raise MatFormatError(f'{path}: none of the variables {list(names)} is present '
                         f'(found {sorted(mdict)})')


def mat_str(value: Any, path: str, what: str) -> str:
    """Decode a MATLAB char leaf (a (1,) ``<U`` array) into ``str``."""
    if isinstance(value, str):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind == 'U' and arr.size == 1:
        return str(arr.reshape(-1)[0])
    if arr.dtype.kind == 'O' and arr.size == 1:  # a cell holding the char array
        return mat_str(arr.reshape(-1)[0], path, what)
    raise MatFormatError(f'{path}: {what} should be a string, got {arr.dtype} {arr.shape}')


def mat_box(value: Any, path: str, what: str) -> Optional[np.ndarray]:
    """Decode a box leaf into int64 ``[x, y, w, h]``, or ``None`` for the 1×0 empty box.

    The cast happens before any arithmetic (uint8 storage wraps on ``x + w``).
    """
    arr = np.asarray(value)
    if arr.size == 0:
        return None
    if arr.dtype.kind not in 'uif' or arr.size != 4:
        raise MatFormatError(f'{path}: {what} should be 4 numbers [x y w h], got '
                             f'{arr.dtype} {arr.shape}')
    return arr.reshape(-1).astype(np.int64)


def mat_scalar(value: Any, path: str, what: str, default: int = -1) -> int:
    """Decode a numeric (1,1) leaf (``ishard``, ``nAppear``) into ``int``; empty → default."""
    arr = np.asarray(value)
    if arr.size == 0:
        return default
    if arr.dtype.kind not in 'uifb' or arr.size != 1:
        raise MatFormatError(f'{path}: {what} should be one number, got {arr.dtype} '
                             f'{arr.shape}')
    return int(arr.reshape(-1)[0])


def struct_items(value: Any, path: str, fields: Iterable[str], what: str) -> List[np.void]:
    """The records of a struct array, after checking it has the required fields.

    Args:
        value: a structured ndarray as ``loadmat`` returns a MATLAB struct array.
        path (str): file name, for errors.
        fields (Iterable[str]): fields that must be present (read by name).
        what (str): what the struct is, for errors.

    Returns:
        list[np.void]: the records in MATLAB (column-major) order.
    """
    arr = np.asarray(value)
    names = arr.dtype.names
    if names is None:
        raise MatFormatError(f'{path}: {what} should be a struct array, got '
                             f'{arr.dtype} {arr.shape}')
    missing = [f for f in fields if f not in names]
    if missing:
        raise MatFormatError(f'{path}: {what} lacks the field(s) {missing} '
                             f'(has {list(names)})')
    return list(arr.reshape(-1, order='F'))


def cell_items(value: Any, path: str, what: str) -> List[Any]:
    """The entries of a cell array (any orientation), in MATLAB order."""
    arr = np.asarray(value)
    if arr.dtype.kind != 'O':
        raise MatFormatError(f'{path}: {what} should be a cell array, got {arr.dtype} '
                             f'{arr.shape}')
    return list(arr.reshape(-1, order='F'))


# --------------------------------------------------------------------------- writing
def mat_num(values: Any) -> np.ndarray:
    """Numbers as MATLAB stores a double array and ``loadmat`` returns it (raw_formats §0.2).

    Integer-valued, non-negative arrays become uint8 (max ≤ 255) or uint16 (max ≤ 65535),
    chosen per array; anything else stays float64. 1-D input becomes a 1×N row.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim < 2:
        arr = arr.reshape(1, -1)
    if arr.size and np.all(arr == np.round(arr)) and arr.min() >= 0:
        if arr.max() <= 255:
            return arr.astype(np.uint8)
        if arr.max() <= 65535:
            return arr.astype(np.uint16)
    return arr


def mat_empty() -> np.ndarray:
    """The 1×0 float64 that marks "the person is not in this image" (raw_formats §2.1)."""
    return np.zeros((1, 0), dtype=np.float64)


def struct_row(fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> np.ndarray:
    """A 1×N MATLAB struct array with ``fields`` (in this order) and one record per row."""
    arr = np.zeros((1, len(rows)), dtype=[(f, 'O') for f in fields])
    for j, row in enumerate(rows):
        if len(row) != len(fields):
            raise ValueError(f'struct row {j} has {len(row)} values for {len(fields)} fields')
        for f, v in zip(fields, row):
            arr[f][0, j] = v
    return arr


def cell_column(items: Sequence[Any]) -> np.ndarray:
    """An N×1 MATLAB cell array."""
    arr = np.empty((len(items), 1), dtype=object)
    for i, v in enumerate(items):
        arr[i, 0] = v
    return arr


def save_mat(path: str, var_name: str, value: Any) -> None:
    """Write one variable with ``savemat`` (zlib-compressed, as the v7 originals)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sio.savemat(path, {var_name: value}, do_compression=True, oned_as='row')
