# Copyright (c) mmpsearch contributors. All rights reserved.
"""The FAISS backend: a shortlist re-scored exactly; incremental add and remove."""
import os

import numpy as np
import pytest

from mmpsearch.retrieval import GalleryIndex, IndexCorruptError


def _clustered(rng, n, d, n_ids):
    centres = rng.standard_normal((n_ids, d))
    ids = rng.integers(0, n_ids, n)
    x = centres[ids] + 0.35 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), centres


def test_approximate_recall_and_exact_scores(tmp_path):
    rng = np.random.default_rng(0)
    emb, centres = _clustered(rng, 3000, 32, 150)
    path = str(tmp_path / 'idx')
    index = GalleryIndex.create(path, 32, dtype='float16')
    index.add(emb[:1500], [f'cam{i % 3}' for i in range(1500)])
    index.add(emb[1500:2500], 'cam3')
    info = index.build_approximate('IVF16,PQ8x4', nprobe=4, train_size=2500)
    assert info['rows'] == 2500 and os.path.isfile(os.path.join(path, 'ann.faiss'))
    index.add(emb[2500:], 'late.mp4')  # after the FAISS index: searched exactly
    index = GalleryIndex.open(path)
    q = centres[:40] + 0.35 * rng.standard_normal((40, 32))
    exact_rows, exact_sims = index.search_rows(q, 10)
    approx_rows, approx_sims = index.search_rows(q, 10, backend='approximate')
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx_rows, exact_rows)])
    assert recall >= 0.9
    for rows, sims, qq in zip(approx_rows, approx_sims, q):  # similarities are exact
        want = index.embeddings(rows) @ (qq / np.linalg.norm(qq))
        assert np.allclose(sims, want, atol=1e-12)
    late = index.search(emb[2800], topk=1, backend='approximate')[0].hits[0]
    assert late.source == 'late.mp4' and late.row == 2800
    # removing a source removes its uids from the FAISS index as well
    assert index.remove('cam3') == 1000
    index = GalleryIndex.open(path)
    assert index.approximate().ntotal == 1500
    res = index.search(emb[1600], topk=20, backend='approximate')[0]
    assert all(h.source != 'cam3' for h in res.hits)


def test_damaged_faiss_file(tmp_path):
    rng = np.random.default_rng(1)
    emb, _ = _clustered(rng, 500, 16, 20)
    path = str(tmp_path / 'idx')
    index = GalleryIndex.create(path, 16)
    index.add(emb, 'a')
    index.build_approximate('IVF4,Flat', train_size=500)
    with open(os.path.join(path, 'ann.faiss'), 'wb') as f:
        f.write(b'garbage')
    with pytest.raises(IndexCorruptError, match='ann.faiss'):
        GalleryIndex.open(path).search(emb[0], backend='approximate')
    os.remove(os.path.join(path, 'ann.faiss'))
    with pytest.raises(IndexCorruptError, match='ann.faiss is missing'):
        GalleryIndex.open(path).search(emb[0], backend='approximate')


def test_hnsw_factory(tmp_path):
    rng = np.random.default_rng(2)
    emb, _ = _clustered(rng, 2000, 16, 50)
    index = GalleryIndex.create(str(tmp_path / 'idx'), 16)
    index.add(emb, 'a')
    index.build_approximate('HNSW16')
    rows, _ = index.search_rows(emb[:20], 5, backend='approximate')
    assert [r[0] for r in rows] == list(range(20))


def test_default_factory_is_fast_scan_and_supports_remove(tmp_path):
    from mmpsearch.retrieval.approximate import default_factory
    assert default_factory(10_000_000, 128) == 'IVF4096,PQ64x4fs'
    assert default_factory(1_000_000, 128) == 'IVF1024,PQ64x4fs'
    assert default_factory(1_000_000, 33) == 'IVF1024,PQ3'  # odd: 8-bit PQ, m divides d
    rng = np.random.default_rng(2)
    emb, centres = _clustered(rng, 2000, 32, 100)
    path = str(tmp_path / 'idx')
    index = GalleryIndex.create(path, 32)
    index.add(emb[:1000], 'a')
    index.add(emb[1000:], 'b')
    info = index.build_approximate(nprobe=16)  # the default description
    assert info['factory'] == 'IVF64,PQ16x4fs' and info['rows'] == 2000
    assert index.remove('a') == 1000
    index = GalleryIndex.open(path)
    assert index.approximate().ntotal == 1000
    hits = index.search(emb[1500], topk=5, backend='approximate')[0].hits
    assert all(h.source == 'b' for h in hits) and abs(hits[0].similarity - 1) < 1e-6
