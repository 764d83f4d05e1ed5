# Copyright (c) mmpsearch contributors. All rights reserved.
"""The dataset base configs build working dataloaders (on the generated sets)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG = osp.join(ROOT, 'configs', '_base_', 'datasets')


@pytest.mark.parametrize('name,fixture', [('synthetic_prw', 'prw_root'),
                                          ('synthetic_cuhk', 'cuhk_root'),
                                          ('prw', 'prw_root'), ('cuhk_sysu', 'cuhk_root')])
def test_dataloaders(name, fixture, request):
    root = request.getfixturevalue(fixture)[0]
    cfg = Config.fromfile(osp.join(CFG, f'{name}.py'))
    assert cfg.val_evaluator['type'] == 'PersonSearchMetric'
    if 'protocols' in cfg.val_dataloader.dataset:  # in-loop validation: G100 only
        assert cfg.val_dataloader.dataset.protocols == ['G100']
        assert cfg.test_dataloader.dataset.protocols is None
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader_cfg = cfg[key].copy()
        loader_cfg.update(num_workers=0, persistent_workers=False, batch_size=2)
        loader_cfg.dataset.data_root = root
        if 'protocols' in loader_cfg.dataset:
            loader_cfg.dataset.protocols = None  # the small generated set has G10/G20
        if name in ('prw', 'cuhk_sysu') and key == 'train_dataloader':
            for t in loader_cfg.dataset.pipeline:  # the full-size recipe, on small images
                if t['type'] == 'WindowResize':
                    t.update(short_side=144, long_side=240)
        loader = Runner.build_dataloader(loader_cfg, seed=0)
        batch = next(iter(loader))
        assert len(batch['inputs']) == 2
        for inputs, sample in zip(batch['inputs'], batch['data_samples']):
            assert inputs.dtype == torch.uint8
            g = sample.gt_instances
            assert len(g.bboxes) == len(g.person_ids) == len(g.known)
            if key == 'train_dataloader':
                crop = 256 if name.startswith('synthetic') else 512
                assert tuple(inputs.shape[1:]) == (crop, crop)
        if key != 'train_dataloader':
            assert 'search_protocol' in loader.dataset.metainfo


def test_coco_persons_config(tmp_path):
    cfg = Config.fromfile(osp.join(CFG, 'coco_persons.py'))
    assert cfg.train_dataloader.sampler == dict(type='RepeatSampler', num_repeats=2,
                                                shuffle=True, batch_size=8)
    kinds = [t['type'] for t in cfg.train_pipeline]
    assert kinds[2:5] == ['RandomScale', 'CenterPad', 'RandomPersonCrop']
    assert cfg.train_pipeline[2]['scale_mode'] == 'released'
    assert cfg.train_pipeline[3]['size'] == 4 * cfg.crop_size
