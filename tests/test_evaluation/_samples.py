# Copyright (c) mmpsearch contributors. All rights reserved.
"""Model outputs (``DetDataSample`` or their ``to_dict()`` form) from toy-case records,
as a person-search detector's ``predict`` returns them (docs/data_contract.md §2)."""
import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData


def record_to_sample(rec: dict, sp: dict, as_dict: bool = False):
    """A data sample carrying the predictions of record ``rec`` (image ``img_id``)."""
    i = list(sp['image_ids']).index(rec['img_id'])
    sample = DetDataSample(metainfo=dict(img_id=rec['img_id'], img_path=rec['img_id'],
                                         ori_shape=(480, 640), img_shape=(480, 640),
                                         scale_factor=(1., 1.), cam_id=int(sp['image_cams'][i])))
    m = len(rec['det_bboxes'])
    sample.pred_instances = InstanceData(
        bboxes=torch.as_tensor(np.asarray(rec['det_bboxes'], np.float32)).reshape(-1, 4),
        scores=torch.as_tensor(np.asarray(rec['det_scores'], np.float32)),
        labels=torch.zeros(m, dtype=torch.long),
        embeddings=torch.as_tensor(np.asarray(rec['det_embeddings'], np.float32)))
    if rec.get('gt_embeddings') is not None:
        sample.gt_embeddings = torch.as_tensor(np.asarray(rec['gt_embeddings'], np.float32))
    q = np.asarray(rec['query_idx'], np.int64)
    sample.query_instances = InstanceData(
        query_idx=torch.as_tensor(q),
        bboxes=torch.as_tensor(np.asarray(sp['query_bboxes'], np.float32)[q]).reshape(-1, 4))
    sample.query_embeddings = torch.as_tensor(np.asarray(rec['query_embeddings'], np.float32))
    return sample.to_dict() if as_dict else sample


def case_samples(case, as_dict: bool = False):
    """Data samples of every image of a toy case, in image order."""
    sp = case.search_protocol
    return [record_to_sample(r, sp, as_dict) for r in case.records()]
