# Copyright (c) mmpsearch contributors. All rights reserved.
"""A CPU Runner smoke test: a tiny model built from the mmpsearch registries trains two
iterations, saves a checkpoint, and a resumed run continues from the saved iteration."""
import copy

import torch
from mmengine.dataset import BaseDataset
from mmengine.model import BaseModel
from mmengine.runner import Runner

from mmpsearch.registry import DATASETS, MODELS


@MODELS.register_module(force=True)
class _SmokeModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor', **kwargs):
        x = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.linear(x)
        if mode == 'loss':
            return dict(loss=(out - 1).pow(2).mean())
        return out


@DATASETS.register_module(force=True)
class _SmokeDataset(BaseDataset):

    def load_data_list(self):
        return [dict(inputs=torch.tensor([float(i), 1.0])) for i in range(8)]


def _cfg(work_dir, max_iters):
    return dict(
        model=dict(type='_SmokeModel'),
        work_dir=str(work_dir),
        default_scope='mmpsearch',
        train_dataloader=dict(
            dataset=dict(type='_SmokeDataset', serialize_data=False),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2, num_workers=0,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING')


def test_train_checkpoint_resume(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, max_iters=2))
    runner.train()
    assert runner.iter == 2
    ckpt = tmp_path / 'iter_2.pth'
    assert ckpt.is_file()
    trained = copy.deepcopy(runner.model.state_dict())

    cfg = _cfg(tmp_path, max_iters=3)
    cfg.update(resume=True, load_from=str(ckpt), experiment_name='resumed')
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == 3
    assert (tmp_path / 'iter_3.pth').is_file()
    # the resumed run started from the saved weights, not from a fresh init
    resumed_first = Runner.from_cfg(dict(cfg, experiment_name='check', train_cfg=dict(
        by_epoch=False, max_iters=2)))
    resumed_first.load_or_resume()
    for k, v in trained.items():
        assert torch.equal(resumed_first.model.state_dict()[k], v)
