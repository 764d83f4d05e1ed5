# Copyright (c) mmpsearch contributors. All rights reserved.
"""Versioned person-search results dumps (docs/results_format.md).

A dump is a pickle of one plain dict: header fields and one record per test image
(``records.py``), only ``str``/``int``/``float``/``bool``/``None``/``list``/``dict`` and
numpy arrays. :func:`load_dump` unpickles it with an allow-list: any other global the
file names (a function, a class, ``torch`` storage, ``os.system``...) is refused with
:class:`UnsafeDumpError` before anything runs, so loading a dump never executes code
from it; numpy names resolve to the guarded stand-ins of :mod:`mmpsearch.utils.safe_numpy`,
so an array whose dtype can hold objects is refused, naming the key that holds it.
:func:`check_dump_matches` refuses a dump made on another dataset.
"""
import datetime
import io
import os.path as osp
import pickle
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from mmpsearch.utils import safe_numpy

from .protocols import data_fingerprint, protocol_fingerprint
from .records import RECORD_KEYS, row_count_problem

FORMAT = 'mmpsearch.person_search_results'
VERSION = 2  # the newest version this module reads and writes
# version 2 adds the per-detection query of query-centric records (``det_query_idx``); a
# dump without it is written as version 1, so older readers still take OC dumps and
# refuse QC dumps instead of scoring them as OC detections
QC_VERSION = 2


class UnsafeDumpError(pickle.UnpicklingError):
    """A dump names something outside the allow-list; nothing of it was executed."""


# allow-listed globals: plain numpy arrays, dtypes and scalars (numpy 1.x and 2.x names),
# through the guarded stand-ins of mmpsearch.utils.safe_numpy (object, structured and
# void dtypes are refused before numpy builds anything from them)
_ALLOWED = {('numpy', 'ndarray'): safe_numpy.NdarrayName,
            ('numpy', 'dtype'): safe_numpy.make_dtype}
for _mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
    _ALLOWED[(_mod, '_reconstruct')] = safe_numpy.reconstruct
    _ALLOWED[(_mod, 'scalar')] = safe_numpy.scalar
for _mod in ('numpy.core.numeric', 'numpy._core.numeric'):
    _ALLOWED[(_mod, '_frombuffer')] = safe_numpy.frombuffer


class _RestrictedUnpickler(pickle.Unpickler):

    def __init__(self, file, path: str):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key not in _ALLOWED:
            hint = (' (a torch/mmengine pickle such as mmengine DumpResults output; write '
                    'person-search dumps with tools/test.py --out)'
                    if module.split('.')[0] in ('torch', 'mmengine', 'mmdet') else '')
            raise UnsafeDumpError(
                f'{self.path}: refusing to load {module}.{name}{hint}. A person-search '
                'dump holds only plain containers and numpy arrays '
                '(docs/results_format.md); nothing from this file was executed.')
        return _ALLOWED[key]

    def persistent_load(self, pid):
        raise UnsafeDumpError(f'{self.path}: refusing a persistent id (torch storage?) in '
                              'a person-search dump')


def _plain(x: Any) -> Any:
    """Records as plain containers of numpy arrays (tensors converted, nothing else)."""
    if x is None or isinstance(x, (str, bool, int, float)):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype.hasobject:
            raise TypeError('object arrays cannot be dumped')
        return np.ascontiguousarray(x)
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if hasattr(x, 'detach'):
        return np.ascontiguousarray(x.detach().cpu().numpy())
    raise TypeError(f'cannot dump a value of type {type(x).__name__}')


def make_dump(records: Sequence[dict], search_protocol: Optional[dict] = None,
              score_thr: float = 0.0,
              qc_protocols: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Build the dump dict (header + records, in protocol image order when known).

    Args:
        records (Sequence[dict]): one record per image (duplicates are dropped).
        search_protocol (dict, optional): the test split's protocol metadata; adds the
            dataset name, fingerprints and each image's annotated boxes / person ids.
        score_thr (float): the score threshold the records were cut at.
        qc_protocols (Sequence[str], optional): query-centric records: the protocols
            whose (query, image) pairs were searched (only those can be evaluated).

    Returns:
        dict: the dump.
    """
    from mmpsearch.version import __version__
    seen, recs = set(), []
    for r in records:
        if r['img_id'] in seen:
            continue
        seen.add(r['img_id'])
        recs.append({k: r.get(k) for k in RECORD_KEYS})
        if r.get('det_query_idx') is not None:
            recs[-1]['det_query_idx'] = r['det_query_idx']
    qc = any('det_query_idx' in r for r in recs)
    if qc and not qc_protocols:
        raise ValueError('query-centric records need the list of searched protocols '
                         '(qc_protocols) to be dumped')
    header = dict(format=FORMAT, version=QC_VERSION if qc else 1, mmpsearch_version=__version__,
                  created=datetime.datetime.now().isoformat(timespec='seconds'),
                  score_thr=float(score_thr), dataset=None, protocol_fingerprint=None,
                  data_fingerprint=None, num_images=len(recs))
    if qc:
        header['qc_protocols'] = [str(p) for p in qc_protocols]
    if search_protocol is not None:
        sp = search_protocol
        index = {n: i for i, n in enumerate(sp['image_ids'])}
        recs.sort(key=lambda r: index.get(r['img_id'], len(index)))
        off = np.asarray(sp['gt_offsets'], np.int64)
        boxes = np.asarray(sp['gt_bboxes'], np.float64)
        pids = np.asarray(sp['gt_person_ids'], np.int64)
        for r in recs:
            i = index.get(r['img_id'])
            if i is not None:
                r['gt_bboxes'] = boxes[off[i]:off[i + 1]]
                r['gt_person_ids'] = pids[off[i]:off[i + 1]]
        header.update(dataset=sp.get('dataset'), protocol_fingerprint=protocol_fingerprint(sp),
                      data_fingerprint=data_fingerprint(sp), num_images=len(sp['image_ids']))
    header['records'] = recs
    return _plain(header)


def write_dump(path: str, dump: Dict[str, Any]) -> None:
    """Write ``dump`` (from :func:`make_dump`) to ``path`` (pickle protocol 4)."""
    with open(path, 'wb') as f:
        pickle.dump(dump, f, protocol=4)


def load_dump(path: str) -> Dict[str, Any]:
    """Load and validate a dump without executing anything from it.

    Args:
        path (str): the ``.pkl`` file.

    Returns:
        dict: the dump.

    Raises:
        UnsafeDumpError: the pickle names anything outside the allow-list.
        ValueError: the file is not a person-search dump, or a newer version.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'no results dump at {path}')
    with open(path, 'rb') as f:
        data = f.read()
    with safe_numpy.guarded_numpy() as guard:
        try:
            dump = _RestrictedUnpickler(io.BytesIO(data), path).load()
        except UnsafeDumpError:
            raise
        except safe_numpy.UnsafeValueError as e:  # a numpy stand-in refused its arguments
            raise UnsafeDumpError(f'{path}: refusing the dump: {e}') from None
        except Exception as e:  # truncated or not a pickle at all
            raise ValueError(f'{path} is not a readable pickle: {e}') from e
        try:
            dump = safe_numpy.finalize(dump, path, guard)
        except safe_numpy.UnsafeValueError as e:  # an object array, naming its key
            raise UnsafeDumpError(f'{e} (a dump holds plain numeric arrays only); nothing '
                                  'from this file was executed') from None
    if not isinstance(dump, dict) or dump.get('format') != FORMAT:
        raise ValueError(f'{path} is not a person-search results dump (format '
                         f'{dump.get("format") if isinstance(dump, dict) else type(dump)}); '
                         'write one with tools/test.py --out')
    if not isinstance(dump.get('version'), int) or dump['version'] > VERSION:
        raise ValueError(f'{path} has dump version {dump.get("version")}; this mmpsearch '
                         f'reads up to version {VERSION}: upgrade mmpsearch')
    qc = dump.get('qc_protocols')
    if qc is not None and not (isinstance(qc, list) and all(isinstance(p, str) for p in qc)):
        raise ValueError(f'{path}: qc_protocols must be a list of protocol names')
    recs = dump.get('records')
    if not isinstance(recs, list):
        raise ValueError(f'{path}: dump has no record list')
    arrays = ('det_bboxes', 'det_scores', 'det_embeddings', 'query_idx', 'query_embeddings')
    for k, r in enumerate(recs):
        if not isinstance(r, dict) or not isinstance(r.get('img_id'), str):
            raise ValueError(f'{path}: record {k} is not a per-image record')
        for key in arrays:
            if not isinstance(r.get(key), np.ndarray):
                raise ValueError(f'{path}: record {k} ({r["img_id"]}) lacks array {key}')
        if r.get('gt_embeddings') is not None and not isinstance(r['gt_embeddings'],
                                                                 np.ndarray):
            raise ValueError(f'{path}: record {k} has a malformed gt_embeddings')
        if 'det_query_idx' in r and not isinstance(r['det_query_idx'], np.ndarray):
            raise ValueError(f'{path}: record {k} ({r["img_id"]}) has a malformed '
                             'det_query_idx')
        problem = row_count_problem(r)
        if problem is not None:
            raise ValueError(f'{path}: record {k} (image {r["img_id"]!r}): {problem}')
    return dump


def check_dump_matches(dump: Dict[str, Any], search_protocol: dict, path: str = '') -> List[str]:
    """Refuse a dump made on another dataset; return warnings for softer differences.

    The dump's ``data_fingerprint`` (images, annotated boxes, queries) must equal the
    dataset's: predictions are aligned to them. A different ``protocol_fingerprint``
    alone (the galleries changed, the images did not) only warns.

    Args:
        dump (dict): a loaded dump.
        search_protocol (dict): the dataset's protocol metadata.
        path (str): the dump's file name, for messages.

    Returns:
        list[str]: warnings.
    """
    sp = search_protocol
    name = path or 'the dump'
    warnings = []
    ds, dd = sp.get('dataset'), dump.get('dataset')
    if dd is not None and dd != ds:
        raise ValueError(f'{name} was made on dataset {dd!r}, but the config builds {ds!r}: '
                         'evaluate it with the config of the dataset it was made on')
    fp = dump.get('data_fingerprint')
    if fp is not None and fp != data_fingerprint(sp):
        raise ValueError(
            f'{name} was made on a different {ds} test split ({dump.get("num_images")} '
            f'images, data fingerprint {fp[:12]}…) than the config builds '
            f'({len(sp["image_ids"])} images, {data_fingerprint(sp)[:12]}…): images, boxes '
            'or queries differ')
    if fp is None:
        warnings.append(f'{name} has no dataset fingerprint (written without dataset '
                        'metadata); it is checked image by image only')
    pf = dump.get('protocol_fingerprint')
    if pf is not None and pf != protocol_fingerprint(sp):
        warnings.append(f'{name}: the protocol lists changed since the dump was written '
                        '(same images and boxes); evaluating with the current lists')
    return warnings
