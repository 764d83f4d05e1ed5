# Copyright (c) mmpsearch contributors. All rights reserved.
"""PersonSearchInferencer on generated images: ranking, drawing and bad input."""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmpsearch.apis import PersonSearchInferencer

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_CONFIG = osp.join(_REPO, 'configs', 'spnet', 'spnet-s_convnext-atto_quickstart_synthetic-prw.py')


@pytest.fixture(scope='module')
def inferencer():
    cfg = Config.fromfile(_CONFIG)
    torch.manual_seed(0)
    # an untrained model: a score threshold of 0 lets its detections through
    return PersonSearchInferencer(cfg, device='cpu', det_thresh=0.0, show_progress=False)


def _scene(rng, h=240, w=320, people=((40, 60), (180, 70))):
    img = np.full((h, w, 3), 90, np.uint8)
    img[:] = rng.integers(60, 120, size=3, dtype=np.uint8)
    boxes = []
    for x, y in people:
        colour = tuple(int(c) for c in rng.integers(0, 255, size=3))
        cv2.rectangle(img, (x, y), (x + 40, y + 120), colour, -1)
        cv2.circle(img, (x + 20, y - 12), 12, (180, 150, 120), -1)
        boxes.append([x, y - 24, x + 40, y + 120])
    return img, boxes


@pytest.fixture(scope='module')
def gallery_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp('gallery')
    for i in range(3):
        img, _ = _scene(rng)
        cv2.imwrite(str(root / f'g{i}.jpg'), img)
    return root


def test_search_ranks_and_draws(inferencer, gallery_dir, tmp_path):
    rng = np.random.default_rng(1)
    query, boxes = _scene(rng)
    qpath = str(tmp_path / 'query.png')
    cv2.imwrite(qpath, query)
    out = str(tmp_path / 'search.png')
    res = inferencer(str(gallery_dir), query=qpath, query_bbox=boxes[0], topk=4,
                     out_file=out)
    hits = res['hits']
    assert 0 < len(hits) <= 4
    sims = [h['similarity'] for h in hits]
    assert sims == sorted(sims, reverse=True)
    assert [h['rank'] for h in hits] == list(range(1, len(hits) + 1))
    assert all(osp.dirname(h['image']) == str(gallery_dir) for h in hits)
    assert all(-1.0 - 1e-5 <= s <= 1.0 + 1e-5 for s in sims)
    assert np.isclose(np.linalg.norm(res['query_embedding']), 1.0, atol=1e-5)
    assert len(res['num_detections']) == 3
    assert cv2.imread(out) is not None and res['visualization'].ndim == 3
    # the ranking agrees with an independent dot product over the same detections
    emb = res['query_embedding']
    assert abs(hits[0]['similarity'] - max(sims)) < 1e-6 and np.isfinite(emb).all()


def test_ground_truth_marks_hits(inferencer, gallery_dir):
    rng = np.random.default_rng(0)
    _, boxes = _scene(rng)  # same generator state as g0.jpg: its people's boxes
    query = cv2.imread(str(gallery_dir / 'g0.jpg'))
    res = inferencer([str(gallery_dir / 'g1.jpg'), str(gallery_dir / 'g2.jpg')], query=query,
                     query_bbox=boxes[0], topk=3, gallery_gt=[boxes[0], None])
    for h in res['hits']:
        assert isinstance(h['correct'], bool)
        if h['image'].endswith('g2.jpg'):
            assert h['correct'] is False


def test_unusual_inputs(inferencer, tmp_path):
    rng = np.random.default_rng(2)
    img, boxes = _scene(rng, h=120, w=900, people=((100, 0), (600, 0)))  # very wide
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    rgba = cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)
    cv2.imwrite(str(tmp_path / 'alpha.png'), rgba)
    cv2.imwrite(str(tmp_path / 'grey.png'), grey)
    res = inferencer([str(tmp_path / 'alpha.png'), str(tmp_path / 'grey.png')], query=grey,
                     query_bbox=[100, 0, 140, 119], topk=2)
    assert len(res['num_detections']) == 2
    emb_grey = inferencer.embed_query(grey, [100, 0, 140, 119])
    emb_rgba = inferencer.embed_query(rgba, [100, 0, 140, 119])
    assert emb_grey.shape == emb_rgba.shape
    # a box partly outside is clipped, one fully outside is refused
    inferencer.embed_query(img, [-20, -10, 140, 119])
    with pytest.raises(ValueError, match='outside'):
        inferencer.embed_query(img, [950, 10, 990, 100])
    with pytest.raises(ValueError, match='empty'):
        inferencer.embed_query(img, [50, 50, 40, 90])


def test_empty_gallery_folder(inferencer, tmp_path):
    (tmp_path / 'empty').mkdir()
    img, boxes = _scene(np.random.default_rng(3))
    with pytest.raises(ValueError, match='no images'):
        inferencer(str(tmp_path / 'empty'), query=img, query_bbox=boxes[0])
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        inferencer([str(tmp_path / 'missing.jpg')], query=img, query_bbox=boxes[0])
