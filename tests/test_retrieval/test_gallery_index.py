# Copyright (c) mmpsearch contributors. All rights reserved.
"""GalleryIndex: persistence, add/remove, exact ranking (== PersonSearchMetric), bad files."""
import json
import os

import numpy as np
import pytest

from mmpsearch.evaluation import PersonSearchMetric
from mmpsearch.evaluation.functional.reference import sklearn_average_precision
from mmpsearch.evaluation.toy_data import random_case
from mmpsearch.retrieval import (GalleryIndex, IndexCorruptError, IndexMismatchError,
                                 load_manifest)
from mmpsearch.retrieval.exact import RowStore, exact_search


def _unit(rng, n, d):
    x = rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _brute(emb, q, k):
    sims = emb.astype(np.float64) @ q.astype(np.float64)
    order = np.lexsort((np.arange(len(sims)), -sims))[:k]
    return order, sims[order]


def test_add_search_reopen_remove(tmp_path):
    rng = np.random.default_rng(0)
    path = str(tmp_path / 'idx')
    index = GalleryIndex.create(path, 8, model_config='m.py', checkpoint_sha256='ab' * 32)
    a, b = _unit(rng, 30, 8), _unit(rng, 20, 8)
    index.add(a, 'cam1.mp4', frames=np.arange(30) // 3, times=np.arange(30) / 10.0,
              boxes=np.tile([1, 2, 3, 4], (30, 1)), scores=np.full(30, 0.9))
    index.add(b, [f'img{i % 4}.jpg' for i in range(20)])
    assert len(index) == 50
    reopened = GalleryIndex.open(path, verify=True)
    q = a[7]
    res = reopened.search(q, topk=5)[0]
    assert res.found and res.threshold is None
    top = res.hits[0]
    assert (top.source, top.frame, top.row, top.uid) == ('cam1.mp4', 2, 7, 7)
    assert top.time == pytest.approx(0.7) and top.box == [1, 2, 3, 4]
    assert top.similarity == pytest.approx(1.0)
    rows, sims = _brute(np.r_[a, b], q, 5)
    assert [h.row for h in res.hits] == rows.tolist()
    assert np.allclose([h.similarity for h in res.hits], sims, rtol=0, atol=1e-12)
    # frame rows are contiguous and found from any of their rows
    assert reopened.frame_rows(7).tolist() == [6, 7, 8]
    # remove a source: rows renumber, uids stay
    assert reopened.remove('img1.jpg') == 5
    assert len(GalleryIndex.open(path)) == 45
    assert 'img1.jpg' not in GalleryIndex.open(path).sources()
    hit = GalleryIndex.open(path).search(b[2], topk=1)[0].hits[0]
    assert hit.uid == 32 and hit.source == 'img2.jpg'
    # shard files of removed shards are gone, nothing unlisted is left
    listed = {s.name for s in load_manifest(path).shards}
    assert {f.split('.')[0] for f in os.listdir(os.path.join(path, 'shards'))} == listed


def test_threshold_not_present(tmp_path):
    rng = np.random.default_rng(1)
    index = GalleryIndex.create(str(tmp_path / 'idx'), 16)
    emb = _unit(rng, 40, 16)
    index.add(emb, 'a.jpg')
    index.set_threshold(dict(similarity=0.9, target_precision=0.95))
    index = GalleryIndex.open(str(tmp_path / 'idx'))
    present, absent = index.search(np.stack([emb[3], _unit(rng, 1, 16)[0]]), topk=3)
    assert present.found and present.hits[0].row == 3 and len(present.hits) == 1
    assert not absent.found and absent.hits == [] and 'not present' in absent.message
    assert index.search(emb[3], topk=3, threshold=None)[0].threshold is None


def test_exact_search_is_float64_ranking_with_ties():
    rng = np.random.default_rng(2)
    base = _unit(rng, 500, 24)
    emb = np.concatenate([base, base[::7], base[::11]])  # exact duplicates: ties
    store = RowStore([emb[:300], emb[300:301], emb[301:]])
    queries = np.concatenate([base[:5], _unit(rng, 5, 24)])
    for block in (7, 64, 1 << 17):
        rows, sims = exact_search(store, queries, 25, block_rows=block)
        for q in range(len(queries)):
            want_rows, want_sims = _brute(emb, queries[q], 25)
            assert rows[q].tolist() == want_rows.tolist()
            assert np.allclose(sims[q], want_sims, rtol=0, atol=1e-14)


def test_exact_ranking_equals_person_search_metric(tmp_path):
    """Index every kept detection of a toy PRW split; rank each query over the whole
    index, leave out its own image (and camera), label as the protocol does: the AP and
    top-k equal PersonSearchMetric's for the same embeddings."""
    from mmpsearch.evaluation.functional.iou import pairwise_iou
    case = random_case(np.random.default_rng(3), kind='PRW', num_images=30, num_ids=6,
                       dets_per_image=(0, 6), dim=12, num_queries=12)
    sp = case.search_protocol
    metric = PersonSearchMetric(tie_order='stable', gt_reid=False, detection=False)
    metric.dataset_meta = dict(search_protocol=sp)
    want = metric.evaluate_records(case.records())
    index = GalleryIndex.create(str(tmp_path / 'idx'), 12)
    for i, img in enumerate(sp['image_ids']):
        keep = case.det_scores[i] >= 0.5
        index.add(case.det_feats[i][keep], img, frames=np.full(keep.sum(), i),
                  boxes=case.det_bboxes[i][keep], scores=case.det_scores[i][keep],
                  coverage=[(img, 0, 1, 1)])
    cams = np.asarray(sp['image_cams'])
    offs, pids = np.asarray(sp['gt_offsets']), np.asarray(sp['gt_person_ids'])
    gt_boxes = np.asarray(sp['gt_bboxes'], np.float64)
    rows, _ = index.search_rows(case.query_feats, topk=len(index))
    for name in ('standard', 'multi_view'):
        cross = sp['protocols'][name]['cross_camera']
        aps, tops = [], []
        for q in sp['protocols'][name]['query_idx']:
            own, pid = sp['query_image_idx'][q], sp['query_person_ids'][q]
            recs = index.records(rows[q])
            img = np.array([r['frame'] for r in recs])
            keep = (img != own) & ~(cross & (cams[img] == cams[own]))
            recs, img = [r for r, k in zip(recs, keep) if k], img[keep]
            sims = index.embeddings(rows[q][keep]) @ case.query_feats[q].astype(np.float64)
            label, matched = np.zeros(len(recs)), set()
            for j, (r, im) in enumerate(zip(recs, img)):
                tgt = [k for k in range(offs[im], offs[im + 1]) if pids[k] == pid]
                if not tgt or im in matched:
                    continue
                g = gt_boxes[tgt[0]]
                w, h = g[2] - g[0], g[3] - g[1]
                if pairwise_iou(np.asarray([r['box']], np.float64), g[None])[0, 0] >= \
                        min(0.5, w * h / ((w + 10) * (h + 10))):
                    label[j] = 1
                    matched.add(im)
            n_gt = sum(1 for im in range(len(cams)) if im != own
                       and not (cross and cams[im] == cams[own])
                       and (pids[offs[im]:offs[im + 1]] == pid).any())
            aps.append(0.0 if not label.any() else
                       sklearn_average_precision(label, sims) * label.sum() / n_gt)
            tops.append([label[:k].any() for k in (1, 5, 10)])
        tops = np.mean(tops, axis=0)
        assert np.mean(aps) == pytest.approx(want[f'{name}/mAP'], abs=1e-9)
        for k, v in zip((1, 5, 10), tops):
            assert v == pytest.approx(want[f'{name}/top{k}'], abs=1e-9)


def test_model_and_dimension_mismatch(tmp_path):
    path = str(tmp_path / 'idx')
    index = GalleryIndex.create(path, 8, model_config='a.py', checkpoint_sha256='1' * 64)
    with pytest.raises(IndexMismatchError, match='manifest.json.*8-d.*4-d'):
        index.search(np.ones(4))
    with pytest.raises(IndexMismatchError, match='4-d'):
        index.add(np.ones((2, 4)), 'x.jpg')
    with pytest.raises(IndexMismatchError, match="'a.py'"):
        index.check_model('b.py')
    with pytest.raises(IndexMismatchError, match='checkpoint sha256'):
        GalleryIndex.create(path, 8, model_config='a.py', checkpoint_sha256='2' * 64,
                            exist_ok=True)
    with pytest.raises(FileExistsError):
        GalleryIndex.create(path, 8)
    with pytest.raises(ValueError, match='not finite'):
        index.add(np.full((1, 8), np.nan), 'x.jpg')


def test_damaged_files_are_named(tmp_path):
    rng = np.random.default_rng(4)
    path = str(tmp_path / 'idx')
    index = GalleryIndex.create(path, 8)
    index.add(_unit(rng, 50, 8), 'a.jpg')
    emb_file = os.path.join(path, 'shards', '000000.emb.npy')
    data = open(emb_file, 'rb').read()
    # flipped bytes in the data: only the checksum sees it
    with open(emb_file, 'wb') as f:
        f.write(data[:-9] + bytes([data[-9] ^ 0xFF]) + data[-8:])
    GalleryIndex.open(path)
    with pytest.raises(IndexCorruptError, match='000000.emb.npy.*checksum'):
        GalleryIndex.open(path, verify=True)
    # truncated shard
    with open(emb_file, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(IndexCorruptError, match='000000.emb.npy'):
        GalleryIndex.open(path)
    os.remove(emb_file)
    with pytest.raises(IndexCorruptError, match='000000.emb.npy is missing'):
        GalleryIndex.open(path)
    # truncated manifest
    man = os.path.join(path, 'manifest.json')
    text = open(man).read()
    with open(man, 'w') as f:
        f.write(text[:len(text) // 2])
    with pytest.raises(IndexCorruptError, match='manifest.json is not valid JSON'):
        GalleryIndex.open(path)
    with open(man, 'w') as f:
        json.dump(dict(format='something else'), f)
    with pytest.raises(ValueError, match='not a gallery-index manifest'):
        GalleryIndex.open(path)
    with pytest.raises(FileNotFoundError, match='no gallery index'):
        GalleryIndex.open(str(tmp_path / 'nothing'))


def test_float16_storage(tmp_path):
    rng = np.random.default_rng(5)
    index = GalleryIndex.create(str(tmp_path / 'idx'), 32, dtype='float16')
    emb = _unit(rng, 200, 32)
    index.add(emb, 'a')
    q = emb[17]
    rows, sims = index.search_rows(q, 10)
    want, want_sims = _brute(emb.astype(np.float16), q, 10)
    assert rows[0].tolist() == want.tolist()
    assert np.allclose(sims[0], want_sims, rtol=0, atol=1e-14)


def test_search_excluding_sources_goes_deeper(tmp_path):
    """The query's own frame left out (as the protocols do): still ``depth`` hits, the
    best ones of the other sources, even when the excluded rows fill the first pages."""
    from mmpsearch.retrieval.search_api import _search_excluding
    rng = np.random.default_rng(0)
    q = np.zeros(8, np.float32)
    q[0] = 1
    own = q + 0.01 * rng.standard_normal((30, 8)).astype(np.float32)  # 30 near-copies
    others = rng.standard_normal((50, 8)).astype(np.float32)
    index = GalleryIndex.create(str(tmp_path / 'idx'), 8)
    index.add(own, 'query_frame.jpg')
    index.add(others, [f'frame_{i % 5}.jpg' for i in range(50)])
    rows, sims = _search_excluding(index, q, 4, 'exact', None, None, {'query_frame.jpg'})
    assert len(rows) == 4 and all(r >= 30 for r in rows)
    all_rows, _ = index.search_rows(q, 80)
    want = [r for r in all_rows[0] if r >= 30][:4]
    assert list(rows) == want and np.all(np.diff(sims) <= 0)
    rows, _ = _search_excluding(index, q, 4, 'exact', None, None, set())
    assert all(r < 30 for r in rows)
    rows, _ = _search_excluding(index, q, 4, 'exact', None, None,
                                {'query_frame.jpg'} | {f'frame_{i}.jpg' for i in range(5)})
    assert len(rows) == 0  # everything excluded: nothing left, no endless deepening
