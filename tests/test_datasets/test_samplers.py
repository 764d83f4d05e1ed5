# Copyright (c) mmpsearch contributors. All rights reserved.
"""RepeatSampler (spnet.md §4.1): each image k times in a row, 4 images x 2 views per
batch of 8, a new order each epoch, per-rank image slices; ViewIndex through datasets."""
import pickle

import numpy as np
import pytest
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader

from mmpsearch.datasets import PRWDataset, RepeatSampler, ViewIndex
from mmpsearch.datasets import samplers as samplers_module


def test_consecutive_views_and_epochs():
    data = list(range(10))
    s = RepeatSampler(data, num_repeats=2, seed=0)
    order = list(s)
    assert len(order) == len(s) == 20
    assert [int(i) for i in order[::2]] == [int(i) for i in order[1::2]]
    assert [i.view_idx for i in order] == [0, 1] * 10
    assert sorted(int(i) for i in order[::2]) == data
    # the released code draws epoch e's order with numpy seed (seed + e)
    assert [int(i) for i in order[::2]] == np.random.RandomState(0).permutation(10).tolist()
    s.set_epoch(1)
    assert [int(i) for i in list(s)[::2]] == np.random.RandomState(1).permutation(10).tolist()
    assert [int(i) for i in RepeatSampler(data, 3, shuffle=False)][:6] == [0, 0, 0, 1, 1, 1]


def test_ranks_get_disjoint_images(monkeypatch):
    data = list(range(11))
    seen = []
    for rank in range(2):
        monkeypatch.setattr(samplers_module, 'get_dist_info', lambda r=rank: (r, 2))
        s = RepeatSampler(data, num_repeats=2, seed=5)
        order = [int(i) for i in s]
        assert len(order) == len(s) == 12  # ceil(11 / 2) images x 2 views
        assert order[::2] == order[1::2]
        seen.append(order[::2])
    # round_up pads with the start of the same order: 11 distinct images, one repeated
    assert len(set(seen[0]) | set(seen[1])) == 11
    assert len(seen[0]) + len(seen[1]) == 12


def test_view_index_pickles_and_reaches_the_data_sample(prw_root):
    v = ViewIndex(5, 1)
    w = pickle.loads(pickle.dumps(v))
    assert w == 5 and w.view_idx == 1 and isinstance(w, int)
    pipeline = [dict(type='LoadPersonSearchImage'),
                dict(type='LoadPersonSearchAnnotations', with_query=False),
                dict(type='PackPersonSearchInputs')]
    ds = PRWDataset(data_root=prw_root[0], split='train', pipeline=pipeline)
    assert ds.get_data_info(ViewIndex(3, 1))['view_idx'] == 1
    assert 'view_idx' not in ds.get_data_info(3)
    loader = DataLoader(ds, batch_size=8, sampler=RepeatSampler(ds, 2, seed=0),
                        collate_fn=pseudo_collate)
    batch = next(iter(loader))
    ids = [s.metainfo['img_id'] for s in batch['data_samples']]
    views = [s.metainfo['view_idx'] for s in batch['data_samples']]
    assert len(set(ids)) == 4 and ids[::2] == ids[1::2] and views == [0, 1] * 4


def test_bad_arguments():
    with pytest.raises(ValueError, match='num_repeats'):
        RepeatSampler([1, 2], num_repeats=0)
