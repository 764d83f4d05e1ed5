# Copyright (c) mmpsearch contributors. All rights reserved.
"""QC inference per query (spnet.md §6.2): a query's detections do not depend on the
other queries searched in the same image, and batched search equals one query at a time."""
import pytest
import torch

from tests.test_models.test_detectors.test_spnet import _batch, _build, _sample, _small_cfg


def _model(cascade):
    torch.manual_seed(0)
    cfg = _small_cfg(cascade=cascade)
    cfg.test_cfg.path = 'qc'
    cfg.test_cfg.qc_cascade_offset = 'query' if cascade else 'bridge'
    model = _build(cfg)
    model.eval()
    # an untrained model scores few anchors above 0.5: keep every candidate
    model.bbox_head.test_cfg['score_thr'] = -1.0
    return model


def _search(model, query_embeds, rows):
    gallery = _sample('g')
    gallery.qc_query_embeddings = query_embeds
    gallery.qc_query_idx = torch.as_tensor(rows)
    with torch.no_grad():
        pred = model(**_batch(model, [gallery]), mode='predict')[0].pred_instances
    return {int(r): (pred.bboxes[pred.query_idx == r], pred.scores[pred.query_idx == r],
                     pred.embeddings[pred.query_idx == r]) for r in rows}


@pytest.mark.parametrize('cascade', [0, 2])
def test_batched_search_equals_one_query_at_a_time(cascade):
    model = _model(cascade)
    gen = torch.Generator().manual_seed(1)
    queries = torch.randn((6, 128), generator=gen)
    rows = [11, 3, 7, 0, 25, 9]
    batched = _search(model, queries, rows)
    for k, r in enumerate(rows):
        alone = _search(model, queries[k:k + 1], [r])[r]
        box, score, emb = batched[r]
        assert len(box) > 0
        torch.testing.assert_close(box, alone[0], rtol=0, atol=1e-4)
        torch.testing.assert_close(score, alone[1], rtol=0, atol=1e-6)
        torch.testing.assert_close(emb, alone[2], rtol=0, atol=1e-5)


def test_no_detection_cap_shared_between_queries():
    """With many queries in one image, each keeps up to ``max_per_query`` detections (the
    old shared ``max_per_img`` cut the image's total to 300)."""
    model = _model(0)
    model.bbox_head.test_cfg['max_per_img'] = 5
    model.bbox_head.test_cfg['max_per_query'] = 4
    gen = torch.Generator().manual_seed(2)
    queries = torch.randn((40, 128), generator=gen)
    dets = _search(model, queries, list(range(40)))
    counts = [len(v[0]) for v in dets.values()]
    assert max(counts) == 4 and sum(counts) > 5
