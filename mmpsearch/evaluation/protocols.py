# Copyright (c) mmpsearch contributors. All rights reserved.
"""Per-query galleries of every evaluation protocol, built from ``search_protocol``.

``search_protocol`` is the test split's ground truth (docs/data_contract.md §3): annotated
boxes per image (CSR), the queries, and named protocols of two kinds:

* ``listed`` (CUHK-SYSU TestG50…G4000, Occlusion, Resolution; oimnetpp.md §6.2): row ``q``
  lists the gallery images of its query exactly as the ``.mat`` file does, duplicates and
  the query's own image included; ``pos_*`` give the target box of each slot.
* ``all_but_query`` (PRW; oimnetpp.md §6.3): every test image but the query's own (and,
  with ``cross_camera``, but those of its camera); the target is the first annotated box
  of the query identity in an image.

:func:`build_search_galleries` turns each into a :class:`SearchGallery`: the distinct
gallery images of each query in first-occurrence order, the recall denominator
``count_gt`` and one target box per (query, image). Two released-code quirks are kept by
default (docs/evaluation.md): a repeated gallery image is counted in ``count_gt`` every
time but scored once, with the box of its first occurrence (``duplicate_gallery=
'released'``; ``'dedup'`` counts it once); and the query's own image stays in a listed
gallery (``exclude_query_image=False``).

Also here: :func:`validate_search_protocol` (clear errors for malformed metadata) and the
fingerprints that tie a results dump to the dataset it was made on.
"""
import hashlib
from typing import Dict, Iterable, Optional, Sequence

import numpy as np

from .functional.gallery import QuerySet, SearchGallery, ranges_to_indices

LISTED_KEYS = ('query_idx', 'gallery_image_idx', 'pos_query', 'pos_slot', 'pos_bboxes')
ALL_BUT_QUERY_KEYS = ('query_idx', 'cross_camera')
TOP_KEYS = ('dataset', 'image_ids', 'image_cams', 'gt_offsets', 'gt_bboxes', 'gt_person_ids',
            'query_image_idx', 'query_bboxes', 'query_person_ids', 'protocols')
DUPLICATE_MODES = ('released', 'dedup')


def validate_search_protocol(sp: dict) -> None:
    """Check that ``sp`` has the shape docs/data_contract.md §3 promises.

    Args:
        sp (dict): the ``search_protocol`` metadata.

    Raises:
        ValueError: naming the first key that is missing or inconsistent.
    """
    if not isinstance(sp, dict):
        raise ValueError(f'search_protocol must be a dict, got {type(sp).__name__}')
    missing = [k for k in TOP_KEYS if k not in sp]
    if missing:
        raise ValueError(f'search_protocol lacks {missing} (see docs/data_contract.md §3)')
    n_img = len(sp['image_ids'])
    offsets = np.asarray(sp['gt_offsets'])
    if offsets.shape != (n_img + 1, ) or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise ValueError(f'search_protocol gt_offsets must be non-decreasing ({n_img + 1},) '
                         f'from 0, got shape {offsets.shape}')
    n_gt = int(offsets[-1])
    _shape(sp, 'gt_bboxes', (n_gt, 4))
    _shape(sp, 'gt_person_ids', (n_gt, ))
    _shape(sp, 'image_cams', (n_img, ))
    n_q = len(np.asarray(sp['query_image_idx']))
    _shape(sp, 'query_bboxes', (n_q, 4))
    _shape(sp, 'query_person_ids', (n_q, ))
    _index_range(sp['query_image_idx'], n_img, 'query_image_idx')
    if len(set(sp['image_ids'])) != n_img:
        raise ValueError('search_protocol image_ids are not unique')
    protocols = sp['protocols']
    if not isinstance(protocols, dict) or not protocols:
        raise ValueError('search_protocol protocols must be a non-empty dict')
    for name, proto in protocols.items():
        kind = proto.get('kind')
        keys = {'listed': LISTED_KEYS, 'all_but_query': ALL_BUT_QUERY_KEYS}.get(kind)
        if keys is None:
            raise ValueError(f'protocol {name!r} has unknown kind {kind!r}')
        missing = [k for k in keys if k not in proto]
        if missing:
            raise ValueError(f'protocol {name!r} ({kind}) lacks {missing}')
        qidx = np.asarray(proto['query_idx'])
        _index_range(qidx, n_q, f'protocols[{name!r}].query_idx')
        if len(np.unique(qidx)) != len(qidx):
            raise ValueError(f'protocol {name!r} lists a query twice')
        if kind == 'listed':
            gal = np.asarray(proto['gallery_image_idx'])
            if gal.ndim != 2 or len(gal) != len(qidx):
                raise ValueError(f'protocol {name!r} gallery_image_idx must be '
                                 f'({len(qidx)}, S), got {gal.shape}')
            if gal.size and (gal.max() >= n_img or gal.min() < -1):
                raise ValueError(f'protocol {name!r} gallery_image_idx out of range '
                                 f'[-1, {n_img})')
            k = len(np.asarray(proto['pos_query']))
            if (np.asarray(proto['pos_slot']).shape != (k, )
                    or np.asarray(proto['pos_bboxes'], np.float64).reshape(-1, 4).shape[0] != k):
                raise ValueError(f'protocol {name!r} pos_query/pos_slot/pos_bboxes lengths '
                                 'differ')
            _index_range(proto['pos_query'], len(qidx), f'protocols[{name!r}].pos_query')
            _index_range(proto['pos_slot'], gal.shape[1], f'protocols[{name!r}].pos_slot')


def _shape(sp, key, shape):
    arr = np.asarray(sp[key])
    if arr.shape != shape and not (arr.size == 0 and np.prod(shape) == 0):
        raise ValueError(f'search_protocol {key} must have shape {shape}, got {arr.shape}')


def _index_range(idx, n, what):
    idx = np.asarray(idx)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f'search_protocol {what} out of range [0, {n})')


def query_set(sp: dict, feats: np.ndarray) -> QuerySet:
    """The :class:`QuerySet` of ``sp`` with the given (Q, D) query embeddings."""
    return QuerySet(feats, sp['query_image_idx'], sp['query_bboxes'])


def build_search_galleries(sp: dict,
                           names: Optional[Iterable[str]] = None,
                           duplicate_gallery: str = 'released',
                           exclude_query_image: bool = False) -> Dict[str, SearchGallery]:
    """Expand the named protocols of ``sp`` into :class:`SearchGallery` objects.

    Args:
        sp (dict): ``search_protocol`` (validated here).
        names (Iterable[str], optional): protocols to build; all when None.
        duplicate_gallery (str): ``'released'``: an image listed twice in one query's
            gallery counts in ``count_gt`` once per listing with a target, and its
            detections are labelled by the first listing (SeqNet/OIMNet++/SPNet); or
            ``'dedup'``: it counts once, labelled by its first listing that has a target.
        exclude_query_image (bool): drop the query's own image from listed galleries (the
            released code keeps it; it occurs for 2 TestG100 queries, raw_formats.md §4).

    Returns:
        dict[str, SearchGallery]: in the requested order.
    """
    validate_search_protocol(sp)
    if duplicate_gallery not in DUPLICATE_MODES:
        raise ValueError(f'duplicate_gallery must be one of {DUPLICATE_MODES}, '
                         f'got {duplicate_gallery!r}')
    protocols = sp['protocols']
    names = list(protocols) if names is None else list(names)
    unknown = [n for n in names if n not in protocols]
    if unknown:
        raise KeyError(f'protocols {unknown} are not in this dataset '
                       f'({sp["dataset"]}: {sorted(protocols)})')
    out = {}
    for name in names:
        proto = protocols[name]
        if proto['kind'] == 'listed':
            out[name] = _listed(sp, name, proto, duplicate_gallery, exclude_query_image)
        else:
            out[name] = _all_but_query(sp, name, proto)
    return out


def _listed(sp, name, proto, duplicate_gallery, exclude_query_image) -> SearchGallery:
    qidx = np.asarray(proto['query_idx'], np.int64)
    gal = np.asarray(proto['gallery_image_idx'], np.int64).reshape(len(qidx), -1)
    n_q, n_slot = gal.shape
    n_img = len(sp['image_ids'])
    own = np.asarray(sp['query_image_idx'], np.int64)[qidx]
    valid = gal >= 0  # -1: padding of a ragged protocol
    if exclude_query_image:
        valid &= gal != own[:, None]
    # first listing of each (query, image). Repeats are rare (4 of 2,900 TestG100 rows),
    # so rows are screened with per-row image counts and only rows with a repeat are
    # resolved one by one
    is_first = valid.copy()
    first_of = {}  # row with a repeat -> (its distinct images, their first slots)
    block = max(1, (1 << 22) // max(n_img, 1))
    for a in range(0, n_q, block):
        g, v = gal[a:a + block], valid[a:a + block]
        key = (np.arange(len(g))[:, None] * n_img + np.maximum(g, 0))[v]
        cnt = np.bincount(key, minlength=len(g) * n_img).reshape(len(g), n_img)
        for q in a + np.nonzero(cnt.max(1) > 1)[0]:
            slots = np.nonzero(valid[q])[0]
            imgs, first = np.unique(gal[q, slots], return_index=True)
            is_first[q] = False
            is_first[q, slots[first]] = True
            first_of[int(q)] = (imgs, slots[first])
    if is_first.all():  # the common case: no padding, no repeat, nothing excluded
        gal_img = gal.reshape(-1)
        gal_slot = np.tile(np.arange(n_slot, dtype=np.int32), n_q)
        gal_offsets = np.arange(n_q + 1, dtype=np.int64) * n_slot
    else:
        gal_q, gal_slot = np.nonzero(is_first)
        gal_img = gal[gal_q, gal_slot]
        gal_slot = gal_slot.astype(np.int32)
        gal_offsets = np.r_[0, np.cumsum(np.bincount(gal_q, minlength=n_q))]

    # target slots: one box per (query, slot), the first entry if a slot is given twice
    pq = np.asarray(proto['pos_query'], np.int64)
    ps = np.asarray(proto['pos_slot'], np.int64)
    pb = np.asarray(proto['pos_bboxes'], np.float64).reshape(-1, 4)
    _, keep = np.unique(pq * n_slot + ps, return_index=True)
    pq, ps, pb = pq[keep], ps[keep], pb[keep]
    pimg = gal[pq, ps]
    ok = valid[pq, ps]
    pq, ps, pb, pimg = pq[ok], ps[ok], pb[ok], pimg[ok]
    pkey = pq * n_img + pimg
    if duplicate_gallery == 'released':
        # every listing with a target counts; only the image's first listing labels its
        # detections (a later listing is skipped as "already processed")
        count_gt = np.bincount(pq, minlength=n_q)
        lab = np.ones(len(pq), bool)
        for k in np.nonzero(np.isin(pq, list(first_of)))[0]:
            imgs, slots = first_of[int(pq[k])]
            lab[k] = ps[k] == slots[np.searchsorted(imgs, pimg[k])]
    else:
        # one count and one label per distinct image: its first listing with a target
        _, lab_idx = np.unique(pkey, return_index=True)
        lab = np.zeros(len(pq), bool)
        lab[lab_idx] = True
        count_gt = np.bincount(pq[lab], minlength=n_q)
    tq, timg, tbox = pq[lab], pimg[lab], pb[lab]
    order = np.lexsort((ps[lab], tq))
    tq, timg, tbox = tq[order], timg[order], tbox[order]
    return SearchGallery(
        name=name, kind='listed', query_rows=qidx, count_gt=count_gt.astype(np.int64),
        tgt_offsets=np.r_[0, np.cumsum(np.bincount(tq, minlength=n_q))],
        tgt_images=timg, tgt_boxes=tbox, gal_offsets=gal_offsets, gal_images=gal_img,
        gal_slots=gal_slot)


def _all_but_query(sp, name, proto) -> SearchGallery:
    qidx = np.asarray(proto['query_idx'], np.int64)
    cross = bool(proto['cross_camera'])
    n_q = len(qidx)
    offsets = np.asarray(sp['gt_offsets'], np.int64)
    pids = np.asarray(sp['gt_person_ids'], np.int64)
    cams = np.asarray(sp['image_cams'], np.int64)
    own = np.asarray(sp['query_image_idx'], np.int64)[qidx]
    qpid = np.asarray(sp['query_person_ids'], np.int64)[qidx]
    gt_img = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
    rows = np.nonzero(pids >= 0)[0]
    # first box of each (identity, image), images in test-frame order (oimnetpp.md §6.3)
    order = np.lexsort((rows, gt_img[rows], pids[rows]))
    rows = rows[order]
    key_pid, key_img = pids[rows], gt_img[rows]
    first = np.r_[True, (key_pid[1:] != key_pid[:-1]) | (key_img[1:] != key_img[:-1])]
    rows, key_pid, key_img = rows[first], key_pid[first], key_img[first]
    uniq, start, count = np.unique(key_pid, return_index=True, return_counts=True)
    pos = np.minimum(np.searchsorted(uniq, qpid), max(len(uniq) - 1, 0))
    found = uniq[pos] == qpid if len(uniq) else np.zeros(n_q, bool)
    n_per_q = np.where(found, count[pos], 0) if len(uniq) else np.zeros(n_q, np.int64)
    st = np.where(found, start[pos], 0) if len(uniq) else np.zeros(n_q, np.int64)
    q_rep = np.repeat(np.arange(n_q, dtype=np.int64), n_per_q)
    ent = ranges_to_indices(st, n_per_q)
    timg, trow = key_img[ent], rows[ent]
    keep = timg != own[q_rep]
    if cross:
        keep &= cams[timg] != cams[own[q_rep]]
    q_rep, timg, trow = q_rep[keep], timg[keep], trow[keep]
    return SearchGallery(
        name=name, kind='all_but_query', query_rows=qidx,
        count_gt=np.bincount(q_rep, minlength=n_q).astype(np.int64),
        tgt_offsets=np.r_[0, np.cumsum(np.bincount(q_rep, minlength=n_q))],
        tgt_images=timg, tgt_boxes=np.asarray(sp['gt_bboxes'], np.float64)[trow],
        cross_camera=cross)


# --------------------------------------------------------------------------- fingerprints
DATA_KEYS = ('dataset', 'image_ids', 'gt_offsets', 'gt_bboxes', 'gt_person_ids',
             'query_image_idx', 'query_bboxes', 'query_person_ids')


def _feed(h, value) -> None:
    """Feed a canonical, type-tagged encoding of ``value`` into hash ``h``."""
    if isinstance(value, dict):
        h.update(b'{')
        for k in sorted(value, key=str):
            _feed(h, str(k))
            _feed(h, value[k])
        h.update(b'}')
    elif isinstance(value, str):
        b = value.encode('utf-8')
        h.update(b's%d:' % len(b) + b)
    elif isinstance(value, (bool, np.bool_)):
        h.update(b'b1' if value else b'b0')
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        h.update(b'L%d[' % len(value))
        for v in value:
            _feed(h, v)
        h.update(b']')
    else:
        arr = np.asarray(value)
        if arr.dtype.kind in 'iub':
            arr = arr.astype('<i8')
        elif arr.dtype.kind == 'f':
            arr = arr.astype('<f8')
        else:
            raise TypeError(f'cannot fingerprint a value of type {type(value).__name__}')
        h.update(b'a%s%s:' % (arr.dtype.str.encode(), str(arr.shape).encode()))
        h.update(np.ascontiguousarray(arr).tobytes())


def protocol_fingerprint(sp: dict, keys: Optional[Sequence[str]] = None) -> str:
    """SHA-256 (hex) of the search protocol (or of ``keys`` of it).

    Arrays are hashed by value in a canonical dtype (int64/float64 little-endian), so the
    fingerprint does not depend on how a loader typed them.

    Args:
        sp (dict): ``search_protocol``.
        keys (Sequence[str], optional): hash only these keys (default: all but
            ``version``).

    Returns:
        str: 64 hex digits.
    """
    keys = sorted(k for k in sp if k != 'version') if keys is None else list(keys)
    h = hashlib.sha256(b'mmpsearch.search_protocol')
    for k in keys:
        _feed(h, k)
        _feed(h, sp[k])
    return h.hexdigest()


def data_fingerprint(sp: dict) -> str:
    """Fingerprint of what predictions are aligned to (images, annotated boxes, queries),
    leaving out the protocol lists: a dump stays valid when only a protocol changes."""
    return protocol_fingerprint(sp, DATA_KEYS)
