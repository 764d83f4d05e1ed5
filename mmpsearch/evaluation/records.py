# Copyright (c) mmpsearch contributors. All rights reserved.
"""Per-image prediction records: what ``PersonSearchMetric.process`` keeps, what a
results dump stores, and how they become the arrays of the protocol maths.

A record is a plain dict of numpy arrays (docs/results_format.md):

* ``img_id`` (str): the image's ``img_id`` (docs/data_contract.md §2 metainfo);
* ``det_bboxes`` (M, 4) float32, ``det_scores`` (M,) float32, ``det_embeddings`` (M, D):
  the detector's ``pred_instances`` (original image pixels);
* ``gt_embeddings`` (N, D) or None: embeddings of the image's annotated boxes, in the
  ``search_protocol`` order of that image;
* ``query_idx`` (Q_i,) int64 and ``query_embeddings`` (Q_i, D): the queries of the image;
* ``det_query_idx`` (M,) int64, query-centric (QC) records only: the query row each
  detection was made for (``pred_instances.query_idx``; spnet.md §6.2). A QC record holds
  the detections of every (query, image) pair searched in the image.

Data samples arrive as ``DetDataSample`` objects or as the dicts mmengine's ``Evaluator``
makes with ``to_dict()``; both are read. :func:`assemble_predictions` maps records to
image indices through ``search_protocol['image_ids']``, so their order does not matter
(distributed testing), repeated records (padding of the last distributed batch) are
dropped, and a record of an image that is not in the protocol, a missing image or
inconsistent shapes raise an error that names the image.
"""
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import numpy as np

from .functional.gallery import DetectionSet

RECORD_KEYS = ('img_id', 'det_bboxes', 'det_scores', 'det_embeddings', 'gt_embeddings',
               'query_idx', 'query_embeddings')


def _get(obj: Any, key: str, default=None):
    """Field ``key`` of a data element (data or metainfo) or of its ``to_dict()`` form."""
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return obj.get(key, default)  # BaseDataElement.get looks in data and metainfo


def to_numpy(x: Any, dtype=None) -> Optional[np.ndarray]:
    """Tensor/array/list → numpy (on the CPU), ``None`` stays ``None``."""
    if x is None:
        return None
    if hasattr(x, 'detach'):
        x = x.detach().cpu()
        if str(x.dtype) in ('torch.float16', 'torch.bfloat16'):
            x = x.float()
        x = x.numpy()
    x = np.asarray(x)
    if x.dtype == np.float16:
        x = x.astype(np.float32)
    return x.astype(dtype) if dtype is not None else x


def _float(x: np.ndarray) -> np.ndarray:
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)


def sample_to_record(sample: Any, score_thr: Optional[float] = None) -> dict:
    """Extract one image's record from a data sample.

    Args:
        sample (DetDataSample | dict): the model's output for one image.
        score_thr (float, optional): keep only detections with ``score >= score_thr``
            (the protocol never looks at the others; saves memory).

    Returns:
        dict: the record (see the module docstring).
    """
    img_id = _get(sample, 'img_id')
    if img_id is None:
        raise KeyError('a data sample has no `img_id` metainfo; person-search datasets '
                       'must set it (docs/data_contract.md §2)')
    img_id = str(img_id)
    pred = _get(sample, 'pred_instances')
    if pred is None:
        raise KeyError(f'image {img_id!r}: the data sample has no `pred_instances`')
    boxes = _float(to_numpy(_get(pred, 'bboxes'))).reshape(-1, 4)
    scores = _get(pred, 'scores')
    scores = (np.ones(len(boxes), np.float32) if scores is None else
              _float(to_numpy(scores)).reshape(-1))
    emb = _get(pred, 'embeddings')
    if emb is None:
        raise KeyError(f'image {img_id!r}: `pred_instances` has no `embeddings`; a '
                       'person-search model must embed its detections')
    emb = _float(to_numpy(emb))
    if emb.ndim != 2:
        emb = emb.reshape(len(boxes), -1) if len(boxes) else emb.reshape(0, 0)
    if not (len(boxes) == len(scores) == len(emb)):
        raise ValueError(f'image {img_id!r}: pred_instances has {len(boxes)} boxes, '
                         f'{len(scores)} scores and {len(emb)} embeddings')
    det_query = _get(pred, 'query_idx')
    if det_query is None and _get(pred, 'query_inds') is not None:
        raise KeyError(f'image {img_id!r}: query-centric detections carry query_inds but '
                       'not the split query rows (query_idx); run QC search through '
                       'QCTestLoop, which sets them')
    if det_query is not None:
        det_query = to_numpy(det_query, np.int64).reshape(-1)
        if len(det_query) != len(boxes):
            raise ValueError(f'image {img_id!r}: pred_instances has {len(boxes)} boxes '
                             f'but {len(det_query)} query indices')
    if score_thr is not None:
        keep = (scores >= score_thr) | ~np.isfinite(scores)  # NaN stays, to be reported
        boxes, scores, emb = boxes[keep], scores[keep], emb[keep]
        det_query = None if det_query is None else det_query[keep]
    gt = _get(sample, 'gt_embeddings')
    gt = None if gt is None else _float(to_numpy(gt))
    qinst = _get(sample, 'query_instances')
    qidx = _get(qinst, 'query_idx')
    qidx = np.zeros(0, np.int64) if qidx is None else to_numpy(qidx, np.int64).reshape(-1)
    qemb = _get(sample, 'query_embeddings')
    if qemb is None:
        if len(qidx):
            raise KeyError(f'image {img_id!r} holds {len(qidx)} queries but the data '
                           'sample has no `query_embeddings`')
        qemb = np.zeros((0, emb.shape[1] if emb.ndim == 2 else 0), np.float32)
    else:
        qemb = _float(to_numpy(qemb))
        if qemb.ndim != 2:
            qemb = qemb.reshape(len(qidx), -1) if len(qidx) else qemb.reshape(0, 0)
        if len(qemb) != len(qidx):
            raise ValueError(f'image {img_id!r}: {len(qidx)} queries but '
                             f'{len(qemb)} query embeddings')
    record = dict(img_id=img_id, det_bboxes=boxes, det_scores=scores, det_embeddings=emb,
                  gt_embeddings=gt, query_idx=qidx, query_embeddings=qemb)
    if det_query is not None:
        record['det_query_idx'] = det_query
    return record


@dataclass
class Predictions:
    """Records of a whole test split, aligned with ``search_protocol``.

    Attributes:
        dets (DetectionSet): all recorded detections, CSR by image index.
        gt_feats (np.ndarray | None): (G, D) embeddings of the annotated boxes, or None
            when no record carries them.
        query_feats (np.ndarray): (Q, D) query embeddings (rows of queries never
            recorded are NaN; ``query_known`` tells which).
        query_known (np.ndarray): (Q,) bool.
        image_ids (list[str]): ``search_protocol['image_ids']``.
        det_query (np.ndarray | None): (M,) QC records only: the query row each
            detection was made for, aligned with ``dets``.
    """
    dets: DetectionSet
    gt_feats: Optional[np.ndarray]
    query_feats: np.ndarray
    query_known: np.ndarray
    image_ids: List[str]
    det_query: Optional[np.ndarray] = None


def row_count_problem(rec: dict) -> Optional[str]:
    """What is wrong with a record's per-row arrays, or None when they agree.

    ``det_bboxes`` is (M, 4); ``det_scores`` has M entries and ``det_embeddings`` M rows;
    ``query_embeddings`` has one row per ``query_idx`` entry. Empty arrays of any shape
    stand for zero rows.
    """
    def rows(a):
        a = np.asarray(a)
        return 0 if a.size == 0 else (len(a) if a.ndim else -1)

    boxes = np.asarray(rec['det_bboxes'])
    if boxes.size and (boxes.ndim != 2 or boxes.shape[1] != 4):
        return f'det_bboxes has shape {boxes.shape}, expected (M, 4)'
    m = rows(boxes)
    scores = np.asarray(rec['det_scores'])
    if scores.size and scores.ndim != 1 or rows(scores) != m:
        return f'det_scores has shape {scores.shape} but det_bboxes has {m} rows'
    emb = np.asarray(rec['det_embeddings'])
    if emb.size and emb.ndim != 2 or rows(emb) != m:
        return f'det_embeddings has shape {emb.shape} but det_bboxes has {m} rows'
    if rec.get('det_query_idx') is not None:
        dq = np.asarray(rec['det_query_idx'])
        if dq.size and dq.ndim != 1 or rows(dq) != m:
            return f'det_query_idx has shape {dq.shape} but det_bboxes has {m} rows'
    qidx = np.asarray(rec['query_idx'])
    if qidx.size and qidx.ndim != 1:
        return f'query_idx has shape {qidx.shape}, expected (Q,)'
    qemb = np.asarray(rec['query_embeddings'])
    if qemb.size and qemb.ndim != 2 or rows(qemb) != rows(qidx):
        return (f'query_embeddings has shape {qemb.shape} but query_idx has '
                f'{rows(qidx)} entries')
    return None


def assemble_predictions(records: Sequence[dict], sp: dict, source: str = '') -> Predictions:
    """Order records by image index and check them against ``search_protocol``.

    Args:
        records (Sequence[dict]): one record per image, any order, duplicates allowed.
        sp (dict): ``search_protocol``.
        source (str): where the records come from (a file name), for error messages.

    Returns:
        Predictions: the aligned arrays.
    """
    where = f' in {source}' if source else ''
    ids = list(sp['image_ids'])
    index = {name: i for i, name in enumerate(ids)}
    n_img = len(ids)
    by_img: List[Optional[dict]] = [None] * n_img
    unknown = []
    for rec in records:
        i = index.get(rec['img_id'])
        if i is None:
            unknown.append(rec['img_id'])
        elif by_img[i] is None:  # a repeat is the padding of a distributed batch
            by_img[i] = rec
    dataset = sp.get('dataset', '?')
    if unknown:
        raise ValueError(
            f'{len(unknown)} prediction records{where} name images that are not in the '
            f'{dataset} test split of {n_img} images (e.g. {unknown[:3]}): are these '
            'predictions of another dataset?')
    missing = [ids[i] for i in range(n_img) if by_img[i] is None]
    if missing:
        raise ValueError(f'predictions{where} are missing for {len(missing)} of {n_img} '
                         f'{dataset} test images (e.g. {missing[:3]})')
    for i, r in enumerate(by_img):
        problem = row_count_problem(r)
        if problem is not None:
            raise ValueError(f'image {ids[i]!r}{where}: {problem}')
    dims = {r['det_embeddings'].shape[1] for r in by_img if r['det_embeddings'].ndim == 2
            and len(r['det_embeddings'])}
    dims |= {r['query_embeddings'].shape[1] for r in by_img if len(r['query_embeddings'])}
    dims |= {r['gt_embeddings'].shape[1] for r in by_img if r.get('gt_embeddings') is not None
             and r['gt_embeddings'].ndim == 2 and len(r['gt_embeddings'])}
    if len(dims) > 1:
        raise ValueError(f'embeddings{where} have different dimensions {sorted(dims)}')
    dim = dims.pop() if dims else 0
    counts = np.array([len(r['det_bboxes']) for r in by_img], np.int64)
    feats = [r['det_embeddings'].reshape(-1, dim) for r in by_img]
    dets = DetectionSet(np.r_[0, np.cumsum(counts)],
                        np.concatenate([r['det_bboxes'] for r in by_img]).reshape(-1, 4),
                        np.concatenate([r['det_scores'] for r in by_img]),
                        np.concatenate(feats) if feats else np.zeros((0, dim), np.float32))
    # query-centric records: every record or none carries det_query_idx
    is_qc = ['det_query_idx' in r for r in by_img]
    det_query = None
    if any(is_qc):
        if not all(is_qc):
            bad = ids[is_qc.index(False)]
            raise ValueError(f'image {bad!r}{where} has object-centric predictions while '
                             'others are query-centric (det_query_idx): mixed records')
        det_query = np.concatenate([np.asarray(r['det_query_idx'], np.int64).reshape(-1)
                                    for r in by_img])
        if len(det_query) != dets.num_dets:
            raise ValueError(f'det_query_idx{where} does not match the detections')
        n_q = len(sp['query_image_idx'])
        if len(det_query) and (det_query.min() < 0 or det_query.max() >= n_q):
            k = int(np.nonzero((det_query < 0) | (det_query >= n_q))[0][0])
            raise ValueError(f'image {ids[int(dets.image_index()[k])]!r}{where}: '
                             f'det_query_idx {int(det_query[k])} out of range [0, {n_q})')
    # annotated-box embeddings: all images or none
    gt_off = np.asarray(sp['gt_offsets'], np.int64)
    have_gt = [r.get('gt_embeddings') is not None for r in by_img]
    gt_feats = None
    if any(have_gt):
        if not all(have_gt):
            bad = ids[have_gt.index(False)]
            raise ValueError(f'image {bad!r}{where} has no gt_embeddings while others do')
        for i, r in enumerate(by_img):
            n = gt_off[i + 1] - gt_off[i]
            g = r['gt_embeddings']
            if g.shape[0] != n or (n and g.reshape(n, -1).shape[1] != dim):
                raise ValueError(
                    f'image {ids[i]!r}{where}: gt_embeddings has shape {g.shape} but '
                    f'search_protocol annotates {n} boxes of dimension {dim} there (the '
                    'model must embed every annotated box in the protocol order)')
        gt_feats = np.concatenate([r['gt_embeddings'].reshape(-1, dim) for r in by_img])
    # queries
    q_img = np.asarray(sp['query_image_idx'], np.int64)
    n_q = len(q_img)
    qf = np.full((n_q, dim), np.nan, np.float64 if any(
        r['query_embeddings'].dtype == np.float64 for r in by_img) else np.float32)
    known = np.zeros(n_q, bool)
    for i, r in enumerate(by_img):
        qi = r['query_idx']
        if len(qi) == 0:
            continue
        if qi.min() < 0 or qi.max() >= n_q:
            raise ValueError(f'image {ids[i]!r}{where}: query_idx {qi.tolist()} out of '
                             f'range [0, {n_q})')
        wrong = qi[q_img[qi] != i]
        if len(wrong):
            raise ValueError(f'image {ids[i]!r}{where} reports query {int(wrong[0])}, '
                             f'which search_protocol places in image '
                             f'{ids[q_img[wrong[0]]]!r}')
        qf[qi] = r['query_embeddings'].reshape(len(qi), dim)
        known[qi] = True
    return Predictions(dets, gt_feats, qf, known, ids, det_query)


def check_finite(name: str, values: np.ndarray, owner: np.ndarray, image_ids: Sequence[str],
                 what: str = 'image') -> None:
    """Raise a clear error if ``values`` holds NaN/inf, naming the first owner image.

    Args:
        name (str): what the values are (``'detection embeddings'``).
        values (np.ndarray): (N, ...) array.
        owner (np.ndarray): (N,) image index of each row.
        image_ids (Sequence[str]): image names.
        what (str): noun for the owner in the message.
    """
    if values.size == 0:
        return
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(1)
    if bad.any():
        k = int(np.nonzero(bad)[0][0])
        raise ValueError(f'{int(bad.sum())} {name} are not finite (NaN/inf), first in '
                         f'{what} {image_ids[int(owner[k])]!r}: the model produced invalid '
                         'outputs; no metric can be computed from them')
