# Copyright (c) mmpsearch contributors. All rights reserved.
"""A hit's similarity does not depend on the detection's position among the others:
identical detections tie exactly (no model needed)."""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmpsearch.apis import PersonSearchInferencer


def _sample(embeddings):
    n = len(embeddings)
    xy = torch.arange(n, dtype=torch.float32)[:, None] * 10
    pred = InstanceData(bboxes=torch.cat([xy, xy, xy + 40, xy + 90], dim=1),
                        scores=torch.full((n,), 0.9), embeddings=embeddings)
    return DetDataSample(pred_instances=pred)


@pytest.mark.parametrize('num,dim', [(5, 64), (17, 64), (33, 128), (2, 2048), (300, 256)])
def test_identical_detections_tie(num, dim):
    torch.manual_seed(num)
    inferencer = PersonSearchInferencer.__new__(PersonSearchInferencer)
    inferencer.det_thresh = 0.5
    emb = torch.randn(num, dim)
    emb[-1] = emb[0]  # one image: the same detection first and last
    query = torch.nn.functional.normalize(torch.randn(dim), dim=0)
    # another image holds only that detection
    res = inferencer.postprocess([_sample(emb), _sample(emb[:1].clone())], query,
                                 topk=num + 1, images=['a.jpg', 'b.jpg'])
    hits = res['hits']
    assert len(hits) == num + 1
    last = 10.0 * (num - 1)
    same = {('a.jpg', (0.0, 0.0, 40.0, 90.0)), ('a.jpg', (last, last, last + 40, last + 90)),
            ('b.jpg', (0.0, 0.0, 40.0, 90.0))}
    sims = [h['similarity'] for h in hits if (h['image'], tuple(h['bbox'])) in same]
    assert len(sims) == 3 and len(set(sims)) == 1, sims
    # tied hits keep the gallery order (image, then detection)
    tied = [(h['image'], h['bbox'][0]) for h in hits if h['similarity'] == sims[0]]
    assert tied == [('a.jpg', 0.0), ('a.jpg', last), ('b.jpg', 0.0)]
