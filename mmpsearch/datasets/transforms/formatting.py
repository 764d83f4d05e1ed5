# Copyright (c) mmpsearch contributors. All rights reserved.
"""Packing into ``DetDataSample`` (docs/data_contract.md §2)."""
import numpy as np
import torch
from mmdet.datasets.transforms import PackDetInputs
from mmdet.structures.bbox import BaseBoxes
from mmengine.structures import InstanceData

from mmpsearch.registry import TRANSFORMS
from ._geometry import check_aligned, get_boxes

META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
             'flip_direction', 'cam_id', 'view_idx')


@TRANSFORMS.register_module()
class PackPersonSearchInputs(PackDetInputs):
    """``PackDetInputs`` with the person-search fields.

    ``gt_instances``: ``bboxes`` (N, 4) float32 tensor (network input coordinates),
    ``labels``, ``person_ids``, ``person_labels``, ``instance_ids`` (int64; the box's
    identity key within its image, shared by all augmented views), ``known`` (bool).
    ``query_instances``: ``bboxes`` (Q, 4), ``person_ids``, ``query_idx`` (int64); empty
    (Q = 0) when the image has no query or the split has none. Boxes become plain tensors
    (mmdet's detectors accept both; the metric and the person-search heads expect tensors).
    Before packing, every per-box key is checked to still match its boxes.

    Args:
        meta_keys (tuple[str]): metainfo keys (adds ``cam_id`` and ``view_idx`` to mmdet's).
    """
    mapping_table = {
        'gt_bboxes': 'bboxes',
        'gt_bboxes_labels': 'labels',
        'gt_masks': 'masks',
        'gt_person_ids': 'person_ids',
        'gt_person_labels': 'person_labels',
        'gt_known': 'known',
        'gt_instance_ids': 'instance_ids',
    }

    def __init__(self, meta_keys=META_KEYS):
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        check_aligned(results, type(self).__name__)
        # the contract's metainfo keys exist even when no resize/flip ran
        results.setdefault('scale_factor', (1.0, 1.0))
        results.setdefault('flip', False)
        results.setdefault('flip_direction', None)
        results.setdefault('cam_id', -1)
        packed = super().transform(results)
        sample = packed['data_samples']
        for name in ('gt_instances', 'ignored_instances'):
            inst = getattr(sample, name)
            if 'bboxes' in inst and isinstance(inst.bboxes, BaseBoxes):
                inst.bboxes = inst.bboxes.tensor.float()
            elif 'bboxes' not in inst:
                inst.bboxes = torch.zeros((0, 4))
        queries = InstanceData()
        qb = get_boxes(results, 'query')
        queries.bboxes = torch.as_tensor(qb, dtype=torch.float32)
        queries.person_ids = torch.as_tensor(
            np.asarray(results.get('query_person_ids', np.zeros(0)), np.int64))
        queries.query_idx = torch.as_tensor(
            np.asarray(results.get('query_idx', np.zeros(0)), np.int64))
        sample.query_instances = queries
        return packed

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
