# Copyright (c) mmpsearch contributors. All rights reserved.
"""The supplement's experiment grid (Tables 5, 6, 8, Figures 7, 8): every fine-tuning
config that starts from pre-training (or from random init) builds at full size with the
§5 loading rules it should use, and one training step of each runs on the CPU with the
pre-trained weights loaded, at reduced widths and a small input."""
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from mmpsearch.registry import MODELS
from tests.test_models.test_detectors.test_spnet import _batch, _sample

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CFG_DIR = osp.join(ROOT, 'configs/spnet')
# the backbone part of the name tells the initialisation: -rand, -qcpt..., -ocpt...
GRID = sorted(f for f in os.listdir(CFG_DIR)
              if re.match(r'spnet-[^_]+_convnext-[tb]-(rand|qcpt|ocpt)', f))


def test_the_grid_is_complete():
    assert len(GRID) == 29
    for ds in ('cuhk-sysu', 'prw'):
        for init in ('rand', 'ocpt', 'qcpt'):  # Table 5 (Classifier = the plain config)
            assert f'spnet-s_convnext-t-{init}_30e_{ds}.py' in GRID
        assert f'spnet-s-qcft_convnext-t-qcpt_30e_{ds}.py' in GRID  # Table 8
        assert f'spnet-l_convnext-b-qcpt_30e_{ds}.py' in GRID
    fig7 = [f for f in GRID if re.search(r'pt-(uniform-lr|lwf|frozen-bb)_30e_prw', f)]
    fig8 = [f for f in GRID if f.startswith('spnet-c')]
    assert len(fig7) == 6 and len(fig8) == 7


def _expected(name):
    """(pretrain_path, load_share, replicate_cascade, checkpoint config) of a name."""
    m = re.match(r'(spnet-[^_]+)_convnext-[tb]-((qc|oc)pt)?-?([a-z0-9-]*)_30e_', name)
    algo, path, variant = m.group(1), m.group(3), m.group(4)
    sep = algo.startswith('spnet-l') or '-sep-' in algo
    rep = algo.startswith('spnet-l') or variant == 'rep'
    size = 'l' if algo.startswith('spnet-l') else 's'
    suffix = f'-{variant}' if variant and variant != 'rep' else ''
    return path, sep, rep, f'spnet-{size}-{path}pt{suffix}_convnext-{"b" if size == "l" else "t"}'


@pytest.mark.parametrize('name', GRID)
def test_grid_config_builds_with_its_loading_rules(name):
    cfg = Config.fromfile(osp.join(CFG_DIR, name))
    if '-rand_' in name:
        assert cfg.model.backbone.init_cfg is None and 'init_cfg' not in cfg.model
        return
    init = cfg.model.init_cfg
    path, sep, rep, pt_cfg = _expected(name)
    assert init.type == 'SPNetPretrained' and init.pretrain_path == path
    assert bool(init.get('load_share', False)) == sep
    assert bool(init.get('replicate_cascade', False)) == rep
    assert init.checkpoint == f'work_dirs/{pt_cfg}_30e_coco-persons/epoch_30.pth'
    # the pre-training config the checkpoint comes from exists
    assert osp.isfile(osp.join(CFG_DIR, f'{pt_cfg}_30e_coco-persons.py')), pt_cfg
    model_cfg = cfg.model
    model_cfg.backbone.init_cfg = None
    MODELS.build(model_cfg)  # full size, no weights read


def _shrink(model_cfg):
    """Reduced widths with every structural choice kept (cascade, heads, d_r, path)."""
    model_cfg.backbone.update(arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
                              init_cfg=None, drop_path_rate=0.0)
    model_cfg.neck.update(in_channels=[16, 32, 64], out_channels=32)
    model_cfg.bbox_head.in_channels = 32
    model_cfg.roi_head.roi_extractor.out_channels = 32
    model_cfg.roi_head.loss_reid.update(num_person_ids=6, queue_size=8)
    return model_cfg


@pytest.fixture(scope='module')
def small_pretrained(tmp_path_factory):
    """A pre-training checkpoint of the reduced SPNet-S (C=0, shared, d_r 128) with an
    OC-trained bridge and the pre-training-only keys."""
    cfg = _shrink(Config.fromfile(osp.join(CFG_DIR, 'spnet-s_convnext-t_30e_prw.py')).model)
    torch.manual_seed(11)
    state = {k: v + 0.01 if v.is_floating_point() else v
             for k, v in MODELS.build(cfg).state_dict().items()}
    state['teacher.module.neck.fpn_convs.0.conv.weight'] = torch.ones(3)
    path = tmp_path_factory.mktemp('pt') / 'pretrained.pth'
    torch.save(dict(state_dict=state, meta=dict()), str(path))
    return str(path), state


@pytest.mark.parametrize('name', [n for n in GRID if '-rand_' not in n])
def test_grid_training_step_with_pretrained_weights(name, small_pretrained):
    ckpt, state = small_pretrained
    cfg = Config.fromfile(osp.join(CFG_DIR, name))
    model_cfg = _shrink(cfg.model)
    model_cfg.init_cfg.checkpoint = ckpt
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    report = model.transfer_report
    assert report.loaded and 'teacher.module.neck.fpn_convs.0.conv.weight' in report.dropped
    key = 'bbox_head.reg_head.mlp.0.weight'
    assert torch.equal(model.state_dict()[key], state[key])
    if model_cfg.init_cfg.pretrain_path == 'qc':
        assert torch.count_nonzero(model.bbox_head.bridge.linear.weight) == 0
    if model_cfg.init_cfg.get('replicate_cascade'):
        assert torch.equal(model.cascade.reg_heads[1].mlp[0].weight, state[key])
    optim = cfg.optim_wrapper.copy()
    optim['type'] = 'OptimWrapper'  # AMP needs a GPU; the parameter groups are the same
    optim.pop('dtype', None)
    optim.pop('loss_scale', None)
    optim_wrapper = build_optim_wrapper(model, optim)
    model.train()
    qc = model.train_path == 'qc'
    samples = ([_sample('a'), _sample('a'), _sample('b', pids=(3, 4)), _sample('b', pids=(3, 4))]
               if qc else [_sample('a'), _sample('b', pids=(3, 4), labels=(1, 2),
                                                  known=(True, True))])
    losses = model(**_batch(model, samples), mode='loss')
    assert all(torch.isfinite(v) for v in losses.values()), losses
    optim_wrapper.update_params(sum(losses.values()))
