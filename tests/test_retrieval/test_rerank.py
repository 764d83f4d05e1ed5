# Copyright (c) mmpsearch contributors. All rights reserved.
"""CBGM re-ranking of index hits reuses the metric's matching."""
import numpy as np

from mmpsearch.evaluation.functional import CBGMOptions, cbgm_rerank_image
from mmpsearch.retrieval import GalleryIndex
from mmpsearch.retrieval.rerank import build_context, cbgm_rerank


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_cbgm_rerank_matches_the_metric_rule(tmp_path):
    rng = np.random.default_rng(0)
    people = _unit(rng.standard_normal((6, 8)))
    index = GalleryIndex.create(str(tmp_path / 'idx'), 8)
    frames = [[0, 1, 2], [3, 4], [0, 5]]  # the query (person 0) walks with 1 and 2
    for f, who in enumerate(frames):
        emb = _unit(people[who] + 0.3 * rng.standard_normal((len(who), 8)))
        index.add(emb, 'cam.mp4', frames=np.full(len(who), f),
                  boxes=np.tile([0, 0, 10, 20], (len(who), 1)))
    query = _unit(people[0] + 0.3 * rng.standard_normal(8))
    # the query image: the query box and two companions detected around it
    det_boxes = np.array([[0, 0, 10, 20], [50, 0, 60, 20], [100, 0, 110, 20]], float)
    det_emb = _unit(np.stack([query, people[1], people[2]]))
    context = build_context(query, [0, 0, 10, 20], det_boxes, np.array([0.99, 0.9, 0.8]),
                            det_emb, CBGMOptions(k1=3, k2=3))
    assert context.shape == (3, 8) and np.allclose(context[0], query)
    rows, sims = index.search_rows(query, 7)
    new_rows, new_sims = cbgm_rerank(index, rows[0], sims[0], context, k1=3)
    assert sorted(new_rows.tolist()) == sorted(rows[0].tolist())
    assert np.all(np.diff(new_sims) <= 0)
    for f in range(3):  # each frame holding a top-3 hit: the matched row takes the weight
        frame_rows = index.frame_rows(int(np.nonzero(
            [r['frame'] == f for r in index.records(np.arange(len(index)))])[0][0]))
        if not set(frame_rows) & set(rows[0][:3].tolist()):
            continue
        j, weight = cbgm_rerank_image(context, index.embeddings(frame_rows))
        assert new_sims[new_rows.tolist().index(frame_rows[j])] == weight
