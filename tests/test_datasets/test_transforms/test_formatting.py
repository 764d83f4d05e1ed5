# Copyright (c) mmpsearch contributors. All rights reserved.
"""PackPersonSearchInputs: the data sample of docs/data_contract.md §2, and the alignment
check; a test item of the generated PRW set through the test pipeline."""
import numpy as np
import pytest
import torch
from mmdet.structures.bbox import BaseBoxes

from mmpsearch.datasets import PRWDataset
from mmpsearch.datasets.transforms import PackPersonSearchInputs

from ._helpers import make_results


def test_pack_fields():
    r = make_results(queries=[[150, 40, 210, 260]])
    r.update(view_idx=1, scale_factor=(1.0, 1.0), flip=False, flip_direction=None)
    out = PackPersonSearchInputs()(r)
    assert out['inputs'].shape == (3, 300, 400) and out['inputs'].dtype == torch.uint8
    s = out['data_samples']
    g = s.gt_instances
    assert isinstance(g.bboxes, torch.Tensor) and not isinstance(g.bboxes, BaseBoxes)
    assert g.bboxes.shape == (4, 4) and g.bboxes.dtype == torch.float32
    assert g.labels.tolist() == [0] * 4 and g.labels.dtype == torch.int64
    assert g.person_ids.tolist() == [100, 101, 102, 103] and g.person_ids.dtype == torch.int64
    assert g.person_labels.tolist() == [0, 1, 2, 3] and g.known.dtype == torch.bool
    q = s.query_instances
    assert q.bboxes.tolist() == [[150, 40, 210, 260]]
    assert q.person_ids.tolist() == [500] and q.query_idx.tolist() == [0]
    assert s.metainfo['cam_id'] == 3 and s.metainfo['view_idx'] == 1
    assert s.metainfo['img_id'] == 'fake.jpg'


def test_pack_train_sample_has_empty_queries():
    s = PackPersonSearchInputs()(make_results())['data_samples']
    assert s.query_instances.bboxes.shape == (0, 4)
    for key in ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                'flip_direction', 'cam_id'):  # docs/data_contract.md §2
        assert key in s.metainfo
    assert s.query_instances.query_idx.dtype == torch.int64


def test_pack_refuses_misaligned_ids():
    r = make_results()
    r['gt_person_ids'] = r['gt_person_ids'][:-1]
    with pytest.raises(ValueError, match='gt_person_ids has 3 entries for 4 gt_bboxes'):
        PackPersonSearchInputs()(r)


def test_test_pipeline_on_generated_prw(prw_root):
    pipeline = [dict(type='LoadPersonSearchImage'), dict(type='LoadPersonSearchAnnotations'),
                dict(type='WindowResize', short_side=216, long_side=400),
                dict(type='PackPersonSearchInputs')]
    ds = PRWDataset(data_root=prw_root[0], split='test', test_mode=True, pipeline=pipeline)
    sp = ds.metainfo['search_protocol']
    k = int(sp['query_image_idx'][0])
    info = ds.get_data_info(k)
    out = ds[k]
    s = out['data_samples']
    sx, sy = s.metainfo['scale_factor']
    scale = torch.tensor([sx, sy, sx, sy])
    orig = torch.tensor([i['bbox'] for i in info['instances']])
    assert torch.allclose(s.gt_instances.bboxes, orig * scale)
    assert s.gt_instances.person_ids.tolist() == [i['person_id'] for i in info['instances']]
    q = s.query_instances
    assert 0 in q.query_idx.tolist()
    for box, qi in zip(q.bboxes, q.query_idx.tolist()):
        expect = torch.tensor(sp['query_bboxes'][qi], dtype=torch.float32) * scale
        assert torch.allclose(box, expect)
    assert out['inputs'].shape[1] == 216  # the short side
    assert np.isclose(sx * info['width'], out['inputs'].shape[2], atol=0.5)
