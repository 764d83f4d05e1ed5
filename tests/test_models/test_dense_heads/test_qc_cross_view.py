# Copyright (c) mmpsearch contributors. All rights reserved.
"""Identity keys across augmented views (spnet.md §4.1, §4.4): two crops of one image keep
one key per box, so two views of one *unlabelled* person form QC "other" pairs."""
import os.path as osp

import cv2
import numpy as np
import torch
from mmcv.transforms import Compose

from mmpsearch.datasets.transforms import (LoadPersonSearchAnnotations,
                                           LoadPersonSearchImage, PackPersonSearchInputs,
                                           PersonSearchRandomFlip, RandomFocusedCrop)
from mmpsearch.models.dense_heads import SwapPathHead
from mmpsearch.models.dense_heads.qc_pair_sampler import QCPairSampler

BOXES = [[20, 30, 80, 200], [150, 40, 210, 260], [300, 100, 380, 290]]


def _info(tmp_path):
    path = osp.join(tmp_path, 'frame.jpg')
    cv2.imwrite(path, np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8))
    # all three people are unlabelled (no person id shared across images)
    instances = [dict(bbox=b, bbox_label=0, ignore_flag=0, person_id=-1, person_label=-1,
                      known=False) for b in BOXES]
    return dict(img_path=path, img_id='frame.jpg', height=300, width=400, cam_id=-1,
                instances=instances)


class _Window(RandomFocusedCrop):
    """A crop at a fixed window (the crop/resize step of the random crops)."""

    def __init__(self, window, **kw):
        super().__init__(**kw)
        self.window = window

    def transform(self, results):
        return self._apply(results, self.window)


def _view(info, *steps):
    pipe = Compose([LoadPersonSearchImage(), LoadPersonSearchAnnotations(with_query=False),
                    *steps, PackPersonSearchInputs()])
    return pipe(dict(info))['data_samples']


def test_instance_ids_follow_their_boxes_through_crops(tmp_path):
    info = _info(tmp_path)
    # view 0: left 230 pixels (the third person is cut away); view 1: whole image, flipped
    v0 = _view(info, _Window((0, 0, 230, 300), crop_size=128, min_visibility=0.4))
    v1 = _view(info, PersonSearchRandomFlip(prob=1.0))
    assert v0.gt_instances.instance_ids.tolist() == [0, 1]
    assert v1.gt_instances.instance_ids.tolist() == [0, 1, 2]
    assert v0.gt_instances.instance_ids.dtype == torch.int64
    # the flipped view's box 1 is box 1 of the source, mirrored
    np.testing.assert_allclose(v1.gt_instances.bboxes[1].numpy(), [190, 40, 250, 260])


def test_two_views_of_an_unlabelled_person_are_one_identity(tmp_path):
    info = _info(tmp_path)
    v0 = _view(info, _Window((0, 0, 230, 300), crop_size=128, min_visibility=0.4))
    v1 = _view(info, PersonSearchRandomFlip(prob=1.0))
    gts = [v0.gt_instances, v1.gt_instances]
    metas = [v0.metainfo, v1.metainfo]
    queries, groups = SwapPathHead.qc_queries(gts, metas)
    keys0 = queries.id_keys[queries.img_inds == 0].tolist()
    keys1 = queries.id_keys[queries.img_inds == 1].tolist()
    assert keys0 == keys1[:2] and keys1[2] not in keys0
    assert not queries.fallback.any() and groups.tolist() == [0, 0]
    inst, is_self = QCPairSampler.pair_masks(queries.id_keys, queries.img_inds,
                                             queries.id_keys, queries.img_inds, 2)
    other = inst & ~is_self
    # (view 1, person 0 of view 0), (view 1, person 1 of view 0), (view 0, persons 0/1 of
    # view 1) are the cross-view pairs; the person cut from view 0 has none
    assert other.sum() == 4
    assert not other[:, 4].any() and not inst[0, 4]


def test_without_instance_ids_unlabelled_boxes_stay_distinct(tmp_path):
    info = _info(tmp_path)
    v0 = _view(info, PersonSearchRandomFlip(prob=0.0))
    v1 = _view(info, PersonSearchRandomFlip(prob=1.0))
    for v in (v0, v1):
        del v.gt_instances.instance_ids
    queries, _ = SwapPathHead.qc_queries([v0.gt_instances, v1.gt_instances],
                                         [v0.metainfo, v1.metainfo])
    assert queries.fallback.all() and len(set(queries.id_keys.tolist())) == 6
