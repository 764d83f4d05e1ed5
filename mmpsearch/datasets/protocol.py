# Copyright (c) mmpsearch contributors. All rights reserved.
"""``metainfo['search_protocol']``: the ground truth the search metric reads.

Built once by a test split (docs/data_contract.md §3): the annotated boxes of every test
image in CSR form, the query boxes, and the named protocols. Everything is numpy (float64
boxes in original pixels, int64 indices), so ``dataset.metainfo`` deep-copies cheaply.
"""
from typing import Dict, List, Sequence

import numpy as np

PROTOCOL_VERSION = 1
CUHK_PROTOCOL_NAMES = ('G50', 'G100', 'G500', 'G1000', 'G2000', 'G4000', 'Occlusion',
                       'Resolution')
PRW_PROTOCOL_NAMES = ('standard', 'multi_view')


def listed_protocol(query_idx: np.ndarray, gallery_image_idx: np.ndarray,
                    pos_query: np.ndarray, pos_slot: np.ndarray,
                    pos_bboxes: np.ndarray) -> dict:
    """A ``kind='listed'`` protocol (CUHK-SYSU TestG*, Occlusion, Resolution).

    Args:
        query_idx (np.ndarray): (Qp,) rows of ``query_*`` that this protocol queries.
        gallery_image_idx (np.ndarray): (Qp, S) test-image index of each gallery slot, in
            the ``.mat`` file's order (duplicates and the query's own image kept).
        pos_query (np.ndarray): (K,) protocol row of each target box.
        pos_slot (np.ndarray): (K,) gallery slot of each target box.
        pos_bboxes (np.ndarray): (K, 4) target boxes, xyxy, original pixels.

    Returns:
        dict: the protocol.
    """
    return dict(kind='listed', query_idx=np.asarray(query_idx, np.int64),
                gallery_image_idx=np.asarray(gallery_image_idx, np.int64),
                pos_query=np.asarray(pos_query, np.int64),
                pos_slot=np.asarray(pos_slot, np.int64),
                pos_bboxes=np.asarray(pos_bboxes, np.float64).reshape(-1, 4))


def all_but_query_protocol(query_idx: np.ndarray, cross_camera: bool) -> dict:
    """A ``kind='all_but_query'`` protocol (PRW ``standard`` / ``multi_view``)."""
    return dict(kind='all_but_query', query_idx=np.asarray(query_idx, np.int64),
                cross_camera=bool(cross_camera))


def build_search_protocol(dataset: str, data_list: List[dict], queries: List[dict],
                          protocols: Dict[str, dict]) -> dict:
    """Assemble ``search_protocol`` from a test split's ``data_list``.

    Args:
        dataset (str): ``'CUHK-SYSU'`` or ``'PRW'``.
        data_list (list[dict]): the test images in dataset order (their ``instances``).
        queries (list[dict]): one dict per query row: ``image_idx``, ``bbox`` (xyxy),
            ``person_id``; the row order defines ``query_idx``.
        protocols (dict[str, dict]): named protocols (from :func:`listed_protocol` or
            :func:`all_but_query_protocol`).

    Returns:
        dict: ``search_protocol`` as in docs/data_contract.md §3.
    """
    counts = np.array([len(d['instances']) for d in data_list], np.int64)
    offsets = np.zeros(len(data_list) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    boxes = [ins['bbox'] for d in data_list for ins in d['instances']]
    pids = [ins['person_id'] for d in data_list for ins in d['instances']]
    proto = dict(
        version=PROTOCOL_VERSION,
        dataset=dataset,
        image_ids=[d['img_id'] for d in data_list],
        image_cams=np.array([d.get('cam_id', -1) for d in data_list], np.int64),
        gt_offsets=offsets,
        gt_bboxes=np.array(boxes, np.float64).reshape(-1, 4),
        gt_person_ids=np.array(pids, np.int64),
        query_image_idx=np.array([q['image_idx'] for q in queries], np.int64),
        query_bboxes=np.array([q['bbox'] for q in queries], np.float64).reshape(-1, 4),
        query_person_ids=np.array([q['person_id'] for q in queries], np.int64),
        protocols=protocols)
    check_search_protocol(proto)
    return proto


def check_search_protocol(proto: dict) -> None:
    """Raise ``ValueError`` if ``proto`` breaks docs/data_contract.md §3."""

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ValueError(f'search_protocol: {msg}')

    n_img = len(proto['image_ids'])
    need(proto['version'] == PROTOCOL_VERSION, 'unknown version')
    for key, dtype, shape in (('image_cams', np.int64, (n_img, )),
                              ('gt_offsets', np.int64, (n_img + 1, ))):
        need(proto[key].dtype == dtype and proto[key].shape == shape, f'{key} dtype/shape')
    n_gt = int(proto['gt_offsets'][-1])
    need(np.all(np.diff(proto['gt_offsets']) >= 0), 'gt_offsets not monotonic')
    need(proto['gt_bboxes'].shape == (n_gt, 4) and proto['gt_bboxes'].dtype == np.float64,
         'gt_bboxes dtype/shape')
    need(proto['gt_person_ids'].shape == (n_gt, ), 'gt_person_ids shape')
    nq = proto['query_image_idx'].shape[0]
    need(proto['query_bboxes'].shape == (nq, 4), 'query_bboxes shape')
    need(proto['query_person_ids'].shape == (nq, ), 'query_person_ids shape')
    need(nq == 0 or (proto['query_image_idx'].min() >= 0
                     and proto['query_image_idx'].max() < n_img), 'query_image_idx range')
    for name, p in proto['protocols'].items():
        qidx = p['query_idx']
        need(qidx.dtype == np.int64 and qidx.ndim == 1, f'{name}.query_idx dtype')
        need(qidx.size == 0 or (qidx.min() >= 0 and qidx.max() < nq), f'{name}.query_idx range')
        if p['kind'] == 'listed':
            g = p['gallery_image_idx']
            need(g.ndim == 2 and g.shape[0] == qidx.size, f'{name}.gallery_image_idx shape')
            need(g.size == 0 or (g.min() >= 0 and g.max() < n_img),
                 f'{name}.gallery_image_idx range')
            k = p['pos_query'].size
            need(p['pos_slot'].shape == (k, ) and p['pos_bboxes'].shape == (k, 4),
                 f'{name}.pos_* shapes')
            need(k == 0 or (p['pos_query'].max() < qidx.size and p['pos_slot'].max() < g.shape[1]
                            and p['pos_query'].min() >= 0 and p['pos_slot'].min() >= 0),
                 f'{name}.pos_* range')
        elif p['kind'] == 'all_but_query':
            need(isinstance(p['cross_camera'], bool), f'{name}.cross_camera')
        else:
            raise ValueError(f'search_protocol: {name} has unknown kind {p["kind"]!r}')


def protocol_gallery(proto: dict, name: str, row: int) -> Sequence[int]:
    """Gallery image indices of protocol row ``row`` (a convenience for tests/tools)."""
    p = proto['protocols'][name]
    if p['kind'] == 'listed':
        return p['gallery_image_idx'][row].tolist()
    q = int(p['query_idx'][row])
    qimg = int(proto['query_image_idx'][q])
    keep = np.arange(len(proto['image_ids'])) != qimg
    if p['cross_camera']:
        keep &= proto['image_cams'] != proto['image_cams'][qimg]
    return np.nonzero(keep)[0].tolist()
