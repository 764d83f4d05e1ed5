# Copyright (c) mmpsearch contributors. All rights reserved.
"""The metric on the ``search_protocol`` that the real loaders build (PRW and CUHK-SYSU
layouts of the synthetic data set), against the loop oracle."""
import numpy as np
import pytest

from mmpsearch.evaluation import PersonSearchMetric
from mmpsearch.evaluation.functional.reference import reference_search


@pytest.fixture(scope='module')
def world():
    from mmpsearch.datasets.synthetic import SyntheticConfig, generate_world
    cfg = SyntheticConfig(image_size=(192, 144), num_cameras=3, num_train_frames=20,
                          num_test_frames=30, num_train_ids=8, num_test_ids=6,
                          gallery_sizes=(10, 20), long_tail=5.0)
    return generate_world(cfg, seed=3)


def predictions(sp, rng, dim=16):
    """Detections near the annotated boxes with identity-driven embeddings."""
    pids = sp['gt_person_ids']
    protos = {p: rng.standard_normal(dim) for p in np.unique(pids[pids >= 0])}

    def emb(pid):
        v = (protos[pid] if pid >= 0 else rng.standard_normal(dim)) + rng.standard_normal(dim)
        return v / np.linalg.norm(v)

    off, recs = sp['gt_offsets'], []
    for i, img in enumerate(sp['image_ids']):
        boxes, p = sp['gt_bboxes'][off[i]:off[i + 1]], pids[off[i]:off[i + 1]]
        keep = rng.random(len(boxes)) < 0.8
        q = np.nonzero(sp['query_image_idx'] == i)[0]
        recs.append(dict(
            img_id=img, det_bboxes=(boxes[keep] + rng.normal(0, 1, (keep.sum(), 4))).astype(
                np.float32), det_scores=rng.uniform(0.3, 1, keep.sum()).astype(np.float32),
            det_embeddings=np.array([emb(x) for x in p[keep]], np.float32).reshape(-1, dim),
            gt_embeddings=np.array([emb(x) for x in p], np.float32).reshape(-1, dim),
            query_idx=q, query_embeddings=np.array(
                [emb(sp['query_person_ids'][k]) for k in q], np.float32).reshape(-1, dim)))
    return recs


@pytest.mark.parametrize('layout', ['prw', 'cuhk'])
def test_metric_on_loader_protocols(world, tmp_path, layout):
    from mmpsearch.datasets import CUHKSYSUDataset, PRWDataset
    from mmpsearch.datasets._synthetic_writers import write_cuhk, write_prw
    writer, cls = (write_prw, PRWDataset) if layout == 'prw' else (write_cuhk, CUHKSYSUDataset)
    writer(world, str(tmp_path))
    ds = cls(data_root=str(tmp_path), split='test', test_mode=True, pipeline=[])
    sp = ds.metainfo['search_protocol']
    recs = predictions(sp, np.random.default_rng(0))
    metric = PersonSearchMetric()
    metric.dataset_meta = ds.metainfo
    out = metric.compute_metrics(recs)
    qf = np.zeros((len(sp['query_bboxes']), 16))
    for r in recs:
        qf[r['query_idx']] = r['query_embeddings']
    for name in sp['protocols']:
        ref = reference_search(sp, name, qf, [r['det_bboxes'] for r in recs],
                               [r['det_scores'] for r in recs],
                               [r['det_embeddings'] for r in recs])
        assert out[f'{name}/mAP'] == pytest.approx(ref['ap'].mean(), abs=1e-9)
        assert out[f'{name}/top1'] == pytest.approx(ref['topk'][:, 0].mean(), abs=1e-12)
    assert 'det/AP' in out and f'reid_{next(iter(sp["protocols"]))}/mAP' in out
