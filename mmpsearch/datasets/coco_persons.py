# Copyright (c) mmpsearch contributors. All rights reserved.
"""COCOPersons: the person boxes of COCO, every box its own identity (spnet.md §8.3).

SPNet pre-trains on COCO ``train2017``: category ``person`` annotations with
``iscrowd = 0`` (crowd boxes are dropped, not ignored), boxes clamped to the image,
degenerate boxes dropped, images without a remaining box dropped, ``person_id`` = the
annotation id, every box known.
"""
import json
import os.path as osp
from typing import List

import numpy as np

from mmpsearch.registry import DATASETS
from .base_person_search import BasePersonSearchDataset, make_instance


@DATASETS.register_module()
class COCOPersonsDataset(BasePersonSearchDataset):
    """COCO persons for person-search pre-training.

    ``person_label`` is the box's rank among all kept annotation ids (a dense identity
    index, as SPNet's ``person_id`` remap), so ``num_person_ids`` is the number of boxes.

    Args:
        ann_file (str): a COCO ``instances_*.json``, relative to ``data_root``.
        data_prefix (dict): ``img_path``: the image folder (``train2017``).
        keep_empty (bool): keep images without a person (SPNet drops them).
        **kwargs: :class:`BasePersonSearchDataset` arguments.
    """
    DATASET_NAME = 'COCOPersons'

    def __init__(self, ann_file: str = 'annotations/instances_train2017.json',
                 data_prefix: dict = dict(img_path='train2017'), keep_empty: bool = False,
                 **kwargs):
        self.keep_empty = keep_empty
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        path = self.ann_file
        try:
            with open(path, 'r') as f:
                coco = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f'annotation file not found: {path}') from None
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not valid JSON ({e})') from e
        for key in ('images', 'annotations', 'categories'):
            if key not in coco:
                raise ValueError(f'{path}: not a COCO instances file (no "{key}")')
        person = [c['id'] for c in coco['categories'] if c.get('name') == 'person']
        if len(person) != 1:
            raise ValueError(f'{path}: expected one "person" category, found {len(person)}')
        images = {im['id']: im for im in coco['images']}
        per_image = {i: [] for i in images}
        crowd = 0
        for ann in coco['annotations']:
            if ann.get('category_id') != person[0]:
                continue
            if ann.get('iscrowd', 0):
                crowd += 1
                continue
            if ann['image_id'] not in images:
                raise ValueError(f'{path}: annotation {ann["id"]} refers to unknown image '
                                 f'{ann["image_id"]}')
            per_image[ann['image_id']].append(ann)
        self._count('crowd', crowd, 'crowd person boxes dropped (as SPNet)')
        kept = []
        for img_id in sorted(images):
            im = images[img_id]
            w, h = int(im['width']), int(im['height'])
            anns = sorted(per_image[img_id], key=lambda a: a['id'])
            boxes = np.array([a['bbox'] for a in anns], np.float64).reshape(-1, 4)
            xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
            keep = self._check_boxes(xyxy, w, h, im['file_name'], path)
            xyxy = np.clip(xyxy, 0, [w, h, w, h])  # SPNet clamps boxes to the image
            keep &= (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
            items = [(a['id'], b) for a, b, k in zip(anns, xyxy, keep) if k]
            if items or self.keep_empty:
                kept.append((im, items))
        ids = sorted(a for _, items in kept for a, _ in items)
        label = {a: i for i, a in enumerate(ids)}
        self._num_person_ids = len(ids)
        data_list = []
        for im, items in kept:
            data_list.append(dict(
                img_path=osp.join(self.data_prefix['img_path'], im['file_name']),
                img_id=im['file_name'], height=int(im['height']), width=int(im['width']),
                cam_id=-1,
                instances=[make_instance(b, a, label[a]) for a, b in items]))
        self._log_stats()
        return data_list
