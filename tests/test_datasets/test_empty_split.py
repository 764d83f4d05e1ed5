# Copyright (c) mmpsearch contributors. All rights reserved.
"""An empty split stops at the data set with an error naming the file that lists it
(mmengine would fail later in the sampler or the scheduler without naming anything)."""
import json
import os.path as osp

import numpy as np
import pytest

from mmpsearch.datasets import COCOPersonsDataset, CUHKSYSUDataset, PRWDataset
from mmpsearch.datasets._mat import save_mat


def test_empty_prw_split(prw_copy):
    save_mat(osp.join(prw_copy, 'frame_train.mat'), 'img_index_train',
             np.zeros((0, 1), dtype=object))
    with pytest.raises(ValueError, match=r'train split is empty: .*frame_train\.mat lists no'):
        PRWDataset(data_root=prw_copy, split='train')


def test_empty_prw_split_after_filter(prw_root):
    with pytest.raises(ValueError, match=r'train split is empty after filter_cfg.*'
                                         r'frame_train\.mat'):
        PRWDataset(data_root=prw_root[0], split='train', filter_cfg=dict(min_size=10_000))


def test_empty_cuhk_train_split(cuhk_root, tmp_path):
    """pool.mat lists every image: no training image is left."""
    import shutil
    root = tmp_path / 'cuhk'
    shutil.copytree(cuhk_root[0], root)
    names = sorted(p.name for p in (root / 'Image' / 'SSM').iterdir())
    pool = np.empty((len(names), 1), dtype=object)
    pool[:, 0] = names
    save_mat(str(root / 'annotation' / 'pool.mat'), 'pool', pool)
    with pytest.raises(ValueError, match=r'train split is empty: .*Images\.mat \(less the '
                                         r'images of .*pool\.mat\) lists no'):
        CUHKSYSUDataset(data_root=str(root), split='train')


def test_empty_coco_file(tmp_path):
    path = tmp_path / 'instances.json'
    path.write_text(json.dumps(dict(images=[], annotations=[],
                                    categories=[dict(id=1, name='person')])))
    with pytest.raises(ValueError, match=r'instances\.json lists no usable image'):
        COCOPersonsDataset(ann_file=str(path))
