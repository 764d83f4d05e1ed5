# Copyright (c) mmpsearch contributors. All rights reserved.
"""Random person-search ground truth and predictions, for tests and the benchmark.

:func:`random_case` draws a test split (images, cameras, annotated boxes with
identities), a ``search_protocol`` in the exact layout of docs/data_contract.md §3 (PRW:
``standard`` + ``multi_view``; CUHK-SYSU: listed galleries ``G<S>`` and a query subset),
and per-image predictions (detections with scores and embeddings, embeddings of the
annotated boxes and of the queries). Detections are jittered copies of annotated boxes
plus false positives, some under the score threshold; embeddings are identity prototypes
plus noise. ``quantize=True`` draws small-integer embeddings so that similarities are
exact integers and ties are everywhere (the hard case for ranking code). The quirks of
the real CUHK-SYSU lists (raw_formats.md §4) can be switched on: repeated gallery images
(with the same or another box) and the query's own image in its gallery.

Everything is vectorised, so PRW/CUHK-SYSU-sized cases take seconds.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

Range = Union[int, Tuple[int, int]]


def _draw(rng, r: Range, n: int) -> np.ndarray:
    lo, hi = (r, r) if isinstance(r, (int, np.integer)) else r
    return rng.integers(lo, hi + 1, n)


@dataclass
class ToyCase:
    """A drawn case: ``search_protocol`` plus per-image predictions.

    Attributes:
        search_protocol (dict): the test split's ground truth and protocols.
        det_bboxes, det_scores, det_feats (list[np.ndarray]): per image detections.
        gt_feats (np.ndarray): (G, D) embeddings of the annotated boxes (CSR order).
        query_feats (np.ndarray): (Q, D) query embeddings.
    """
    search_protocol: dict
    det_bboxes: List[np.ndarray]
    det_scores: List[np.ndarray]
    det_feats: List[np.ndarray]
    gt_feats: np.ndarray
    query_feats: np.ndarray
    extra: Dict = field(default_factory=dict)

    def records(self) -> List[dict]:
        """One metric record per image (the layout of ``records.sample_to_record``)."""
        sp = self.search_protocol
        offs = sp['gt_offsets']
        qimg = np.asarray(sp['query_image_idx'])
        out = []
        for i, img_id in enumerate(sp['image_ids']):
            q = np.nonzero(qimg == i)[0]
            out.append(dict(img_id=img_id, det_bboxes=self.det_bboxes[i],
                            det_scores=self.det_scores[i], det_embeddings=self.det_feats[i],
                            gt_embeddings=self.gt_feats[offs[i]:offs[i + 1]],
                            query_idx=q.astype(np.int64), query_embeddings=self.query_feats[q]))
        return out


def _feats(rng, proto: np.ndarray, noise: float, quantize: bool) -> np.ndarray:
    if quantize:
        return (proto + rng.integers(-1, 2, proto.shape)).astype(np.float32)
    f = proto + noise * rng.standard_normal(proto.shape) / np.sqrt(proto.shape[1])
    return (f / np.linalg.norm(f, axis=1, keepdims=True)).astype(np.float32)


def random_case(rng: np.random.Generator,
                kind: str = 'PRW',
                num_images: int = 40,
                num_ids: int = 10,
                gt_per_image: Range = (0, 5),
                dets_per_image: Range = (0, 8),
                dim: int = 16,
                num_queries: int = 15,
                gallery_sizes: Sequence[int] = (10, 20),
                num_cams: int = 6,
                quantize: bool = False,
                noise: float = 1.0,
                unlabeled: float = 0.2,
                low_score: float = 0.2,
                dup_prob: float = 0.0,
                own_image_prob: float = 0.0,
                orphan_queries: int = 0,
                query_subset: bool = True) -> ToyCase:
    """Draw a case (see the module docstring).

    Args:
        rng (np.random.Generator): random source.
        kind (str): ``'PRW'`` or ``'CUHK-SYSU'``.
        num_images (int): test images.
        num_ids (int): identities.
        gt_per_image (int | tuple): annotated boxes per image (range inclusive).
        dets_per_image (int | tuple): detections per image; the first ones cover
            annotated boxes, the rest are false positives.
        dim (int): embedding dimension.
        num_queries (int): queries (labelled boxes).
        gallery_sizes (Sequence[int]): CUHK-SYSU listed gallery sizes (``G<S>``).
        num_cams (int): PRW cameras.
        quantize (bool): small-integer embeddings (exact similarities, many ties).
        noise (float): embedding noise relative to the identity prototype.
        unlabeled (float): share of unlabelled boxes (person id -1).
        low_score (float): share of detections scored under 0.5.
        dup_prob (float): CUHK-SYSU: chance that a query's list repeats an image.
        own_image_prob (float): CUHK-SYSU: chance that a query's list holds its image.
        orphan_queries (int): queries whose identity is in no other image.
        query_subset (bool): CUHK-SYSU: add an ``Occlusion``-like protocol over a third
            of the queries.

    Returns:
        ToyCase: the case.
    """
    n_img = num_images
    n_gt_img = _draw(rng, gt_per_image, n_img)
    n_gt = int(n_gt_img.sum())
    gt_img = np.repeat(np.arange(n_img), n_gt_img)
    pid = rng.integers(0, num_ids, n_gt)
    pid[rng.random(n_gt) < unlabeled] = -1
    xy = rng.uniform(0, 400, (n_gt, 2))
    w = rng.uniform(4, 100, n_gt)
    h = w * rng.uniform(1.2, 3.0, n_gt)
    gt_boxes = np.c_[xy, xy + np.c_[w, h]]
    if quantize:
        protos = rng.integers(-2, 3, (num_ids, dim)).astype(np.float64)
        other = rng.integers(-2, 3, (n_gt, dim)).astype(np.float64)
    else:
        protos = rng.standard_normal((num_ids, dim))
        protos /= np.linalg.norm(protos, axis=1, keepdims=True)
        other = rng.standard_normal((n_gt, dim))
        other /= np.linalg.norm(other, axis=1, keepdims=True)
    person_proto = np.where((pid >= 0)[:, None], protos[np.maximum(pid, 0)], other)
    gt_feats = _feats(rng, person_proto, noise, quantize)

    # detections: covering boxes (jittered, maybe twice) then false positives
    n_det_img = _draw(rng, dets_per_image, n_img)
    gt_offsets = np.r_[0, np.cumsum(n_gt_img)]
    order = rng.permutation(n_gt)  # which annotated boxes get a covering detection
    take = np.minimum(n_det_img, n_gt_img)
    rank_in_img = np.empty(n_gt, np.int64)
    rank_in_img[order[np.argsort(gt_img[order], kind='stable')]] = (
        np.arange(n_gt) - np.repeat(gt_offsets[:-1], n_gt_img))
    covered = rank_in_img < take[gt_img]
    src = np.nonzero(covered)[0]
    n_fp = n_det_img - take
    fp_img = np.repeat(np.arange(n_img), n_fp)
    d_img = np.r_[gt_img[src], fp_img]
    jit = rng.normal(0, 0.12, (len(src), 4)) * np.c_[w[src], h[src], w[src], h[src]]
    cover_boxes = gt_boxes[src] + jit
    cover_boxes[:, 2:] = np.maximum(cover_boxes[:, 2:], cover_boxes[:, :2] + 1)
    fxy = rng.uniform(0, 400, (len(fp_img), 2))
    fw = rng.uniform(4, 100, len(fp_img))
    fp_boxes = np.c_[fxy, fxy + np.c_[fw, fw * rng.uniform(1.2, 3, len(fp_img))]]
    d_boxes = np.r_[cover_boxes, fp_boxes]
    if quantize:
        fp_proto = rng.integers(-2, 3, (len(fp_img), dim)).astype(np.float64)
    else:
        fp_proto = rng.standard_normal((len(fp_img), dim))
        fp_proto /= np.linalg.norm(fp_proto, axis=1, keepdims=True)
    d_feats = _feats(rng, np.r_[person_proto[src], fp_proto], noise, quantize)
    d_scores = rng.uniform(0.5, 1.0, len(d_img))
    d_scores[rng.random(len(d_img)) < low_score] *= 0.9  # some fall under 0.5
    if quantize:
        d_scores = np.round(d_scores * 8) / 8  # equal scores too
    shuffle = np.lexsort((rng.random(len(d_img)), d_img))
    d_img, d_boxes, d_feats, d_scores = (d_img[shuffle], d_boxes[shuffle], d_feats[shuffle],
                                         d_scores[shuffle])
    d_off = np.r_[0, np.cumsum(np.bincount(d_img, minlength=n_img))]
    det_bboxes = [d_boxes[d_off[i]:d_off[i + 1]].astype(np.float32) for i in range(n_img)]
    det_scores = [d_scores[d_off[i]:d_off[i + 1]].astype(np.float32) for i in range(n_img)]
    det_feats = [d_feats[d_off[i]:d_off[i + 1]] for i in range(n_img)]

    # queries: labelled boxes (optionally some whose identity is nowhere else)
    labelled = np.nonzero(pid >= 0)[0]
    q_rows = rng.choice(labelled, min(num_queries, len(labelled)), replace=False)
    if orphan_queries:
        new_ids = num_ids + np.arange(min(orphan_queries, len(q_rows)))
        pid[q_rows[:len(new_ids)]] = new_ids
    q_rows = np.sort(q_rows)
    query_feats = _feats(rng, person_proto[q_rows], noise, quantize)
    cams = (rng.integers(1, num_cams + 1, n_img) if kind == 'PRW' else
            np.full(n_img, -1, np.int64))
    sp = dict(version=1, dataset=kind,
              image_ids=[f'{"c%ds1_" % cams[i] if kind == "PRW" else "s"}{i:06d}.jpg'
                         for i in range(n_img)],
              image_cams=cams.astype(np.int64), gt_offsets=gt_offsets.astype(np.int64),
              gt_bboxes=gt_boxes, gt_person_ids=pid.astype(np.int64),
              query_image_idx=gt_img[q_rows].astype(np.int64), query_bboxes=gt_boxes[q_rows],
              query_person_ids=pid[q_rows].astype(np.int64))
    n_q = len(q_rows)
    if kind == 'PRW':
        sp['protocols'] = dict(
            standard=dict(kind='all_but_query', query_idx=np.arange(n_q), cross_camera=False),
            multi_view=dict(kind='all_but_query', query_idx=np.arange(n_q),
                            cross_camera=True))
    else:
        sp['protocols'] = {}
        for size in gallery_sizes:
            sp['protocols'][f'G{size}'] = _listed(rng, sp, np.arange(n_q), size, dup_prob,
                                                  own_image_prob)
        if query_subset:
            sub = np.sort(rng.choice(n_q, max(1, n_q // 3), replace=False))
            sp['protocols']['Occlusion'] = _listed(rng, sp, sub, min(gallery_sizes),
                                                   dup_prob, own_image_prob)
    return ToyCase(sp, det_bboxes, det_scores, det_feats, gt_feats, query_feats)


def _listed(rng, sp, query_idx, size, dup_prob, own_image_prob) -> dict:
    """A CUHK-SYSU-style listed protocol: positives first, then other images."""
    n_img = len(sp['image_ids'])
    offs, pids, boxes = sp['gt_offsets'], sp['gt_person_ids'], sp['gt_bboxes']
    gt_img = np.repeat(np.arange(n_img), np.diff(offs))
    size = min(size, n_img)
    gal = np.empty((len(query_idx), size), np.int64)
    pq, ps, pb = [], [], []
    for qi, q in enumerate(query_idx):
        p, own = sp['query_person_ids'][q], sp['query_image_idx'][q]
        rows = np.nonzero(pids == p)[0]
        pos_img = np.unique(gt_img[rows])
        pos_img = pos_img[pos_img != own]
        if rng.random() < own_image_prob:
            pos_img = np.r_[own, pos_img]
        pos_img = pos_img[:size]
        neg = np.setdiff1d(np.arange(n_img), np.r_[pos_img, own, gt_img[rows]])
        neg = rng.permutation(neg)[:size - len(pos_img)]
        lst = np.r_[pos_img, neg]
        lst = np.r_[lst, rng.choice(n_img, size - len(lst))] if len(lst) < size else lst
        if size > 2 and rng.random() < dup_prob:
            a, b = sorted(rng.choice(size, 2, replace=False))
            lst[b] = lst[a]
        gal[qi] = lst
        for s, img in enumerate(lst):
            r = rows[gt_img[rows] == img]
            if len(r):
                box = boxes[r[0]]
                if s > 0 and img in lst[:s] and rng.random() < 0.5:
                    box = box + rng.normal(0, 2, 4)  # a second box of the same person
                pq.append(qi)
                ps.append(s)
                pb.append(box)
    return dict(kind='listed', query_idx=np.asarray(query_idx, np.int64),
                gallery_image_idx=gal, pos_query=np.asarray(pq, np.int64),
                pos_slot=np.asarray(ps, np.int64),
                pos_bboxes=np.asarray(pb, np.float64).reshape(-1, 4))


def sim_feature(s: float) -> np.ndarray:
    """2-d unit vector whose cosine with the query feature ``[1, 0]`` is exactly ``s``
    (the convention of the hand-computed test vectors, oimnetpp.md §9)."""
    return np.array([s, np.sqrt(max(0.0, 1.0 - s * s))], np.float64)


def hand_case(images: Sequence[dict],
              queries: Sequence[dict],
              protocols: Dict[str, dict],
              dataset: str = 'CUHK-SYSU') -> ToyCase:
    """A case written out by hand (test vectors). Query embeddings are ``[1, 0]``.

    Args:
        images (Sequence[dict]): per test image ``name``, optional ``cam`` (-1),
            ``gts`` = [(box, person_id)], ``dets`` = [(box, score, similarity)].
        queries (Sequence[dict]): per query ``image`` (name), ``box``, ``pid``.
        protocols (dict[str, dict]): ``dict(kind='listed', rows=[dict(query=i,
            gallery=[(image name, target box or None), ...])])`` or
            ``dict(kind='all_but_query', cross_camera=bool)``.
        dataset (str): dataset name.

    Returns:
        ToyCase: the case.
    """
    names = [im['name'] for im in images]
    index = {n: i for i, n in enumerate(names)}
    gts = [im.get('gts', []) for im in images]
    counts = np.array([len(g) for g in gts], np.int64)
    sp = dict(version=1, dataset=dataset, image_ids=names,
              image_cams=np.array([im.get('cam', -1) for im in images], np.int64),
              gt_offsets=np.r_[0, np.cumsum(counts)].astype(np.int64),
              gt_bboxes=np.array([b for g in gts for b, _ in g], np.float64).reshape(-1, 4),
              gt_person_ids=np.array([p for g in gts for _, p in g], np.int64),
              query_image_idx=np.array([index[q['image']] for q in queries], np.int64),
              query_bboxes=np.array([q['box'] for q in queries], np.float64).reshape(-1, 4),
              query_person_ids=np.array([q['pid'] for q in queries], np.int64),
              protocols={})
    for name, spec in protocols.items():
        if spec['kind'] == 'all_but_query':
            sp['protocols'][name] = dict(kind='all_but_query',
                                         query_idx=np.arange(len(queries), dtype=np.int64),
                                         cross_camera=bool(spec['cross_camera']))
            continue
        rows = spec['rows']
        size = max(len(r['gallery']) for r in rows)
        gal = np.full((len(rows), size), -1, np.int64)
        pq, ps, pb = [], [], []
        for qi, row in enumerate(rows):
            for s, (img, box) in enumerate(row['gallery']):
                gal[qi, s] = index[img]
                if box is not None:
                    pq.append(qi)
                    ps.append(s)
                    pb.append(box)
        sp['protocols'][name] = dict(
            kind='listed', query_idx=np.array([r['query'] for r in rows], np.int64),
            gallery_image_idx=gal, pos_query=np.array(pq, np.int64),
            pos_slot=np.array(ps, np.int64), pos_bboxes=np.array(pb, np.float64).reshape(-1, 4))
    dets = [im.get('dets', []) for im in images]
    det_bboxes = [np.array([d[0] for d in ds], np.float64).reshape(-1, 4) for ds in dets]
    det_scores = [np.array([d[1] for d in ds], np.float64) for ds in dets]
    det_feats = [np.array([sim_feature(d[2]) for d in ds], np.float64).reshape(-1, 2)
                 for ds in dets]
    gt_feats = np.tile(np.array([[0.0, 1.0]]), (int(counts.sum()), 1))
    query_feats = np.tile(np.array([[1.0, 0.0]]), (len(queries), 1))
    return ToyCase(sp, det_bboxes, det_scores, det_feats, gt_feats, query_feats)
