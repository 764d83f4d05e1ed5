# Copyright (c) mmpsearch contributors. All rights reserved.
"""Pre-train → fine-tune transfer (spnet.md §5) on hand-made state dicts: every rule, the
"nothing matched" error, the init type inside SPNet.init_weights, the converter run as a
user runs it, and a checkpoint with a pickled payload refused."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmpsearch.models.utils import convert_pretrained_state, pretrain_path_of
from mmpsearch.registry import MODELS
from tests.test_models.test_detectors.test_spnet import _small_cfg

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def _state(cascade=0, sep=False):
    cfg = _small_cfg(cascade=cascade, sep=sep)
    torch.manual_seed(cascade * 10 + sep)
    return MODELS.build(cfg).state_dict()


def _pretrained(trained_bridge=False):
    """A pre-training state: a C=0 shared model, random values, teacher/LwF/loss keys."""
    g = torch.Generator().manual_seed(7)
    sd = {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
          for k, v in _state().items()}
    for k in [k for k in sd if k.startswith('bbox_head.bridge.')]:
        sd[k] = sd[k] if trained_bridge else torch.zeros_like(sd[k])
    sd['teacher.module.backbone.downsample_layers.0.0.weight'] = torch.ones(3)
    sd['lwf_teacher.trunk.downsample_layers.0.0.weight'] = torch.ones(3)
    sd['lwf_classifier.fc.weight'] = torch.ones(2, 3)
    sd['backbone.norm3.weight'] = torch.ones(4)
    return sd


def test_qc_pretraining_drops_the_bridge_and_the_pretraining_parts():
    src = _pretrained()
    assert pretrain_path_of(src) == 'qc'
    new, rep = convert_pretrained_state(src, _state())
    assert not any(k.startswith(('teacher.', 'lwf_', 'roi_head.loss_reid.', 'bbox_head.bridge.'))
                   for k in new)
    assert rep.dropped['bbox_head.bridge.linear.weight'].startswith('bridge after QC')
    assert rep.dropped['teacher.module.backbone.downsample_layers.0.0.weight'] == 'pre-training only'
    assert rep.dropped['backbone.norm3.weight'] == 'pre-training only'
    assert 'bbox_head.bridge.linear.weight' in rep.reinitialised
    assert torch.equal(new['bbox_head.reg_head.mlp.0.weight'], src['bbox_head.reg_head.mlp.0.weight'])
    assert 'roi_head.loss_reid.lut' in rep.reinitialised


def test_oc_pretraining_keeps_the_bridge():
    src = _pretrained(trained_bridge=True)
    assert pretrain_path_of(src) == 'oc'
    new, _ = convert_pretrained_state(src, _state())
    assert torch.equal(new['bbox_head.bridge.linear.weight'], src['bbox_head.bridge.linear.weight'])
    new, _ = convert_pretrained_state(src, _state(), pretrain_path='qc')
    assert 'bbox_head.bridge.linear.weight' not in new


def test_load_share_copies_the_conv5_head_into_loc_head_1():
    src = _pretrained()
    target = _state(cascade=2, sep=True)
    new, rep = convert_pretrained_state(src, target, load_share=True)
    reid = {k[len('roi_head.reid_stage.'):]: v for k, v in src.items()
            if k.startswith('roi_head.reid_stage.')}
    for rest, v in reid.items():
        assert torch.equal(new[f'roi_head.loc_stages.0.{rest}'], v)
        assert torch.equal(new[f'roi_head.reid_stage.{rest}'], v)
        assert f'roi_head.loc_stages.1.{rest}' not in new  # PT: loc head 2 keeps its init
    assert not any(k.startswith('roi_head.reid_proj.') for k in new)
    assert rep.dropped['roi_head.reid_proj.projs.0.weight'].startswith('load_share')
    assert 'roi_head.loc_projs.0.weight' in rep.reinitialised
    assert not any(k.startswith('cascade.') for k in new)


def test_pt_rep_replicates_stage0_into_the_cascade():
    src = _pretrained(trained_bridge=True)
    target = _state(cascade=2, sep=True)
    new, rep = convert_pretrained_state(src, target, pretrain_path='oc', load_share=True,
                                        replicate_cascade=True)
    for i in range(2):
        for k in [k for k in target if k.startswith(f'cascade.reg_heads.{i}.')]:
            assert torch.equal(new[k], src['bbox_head.reg_head.' + k.split('.', 3)[3]])
        assert torch.equal(new[f'cascade.bridges.{i}.linear.weight'],
                           src['bbox_head.bridge.linear.weight'])
    for k in [k for k in target if k.startswith('roi_head.loc_stages.1.')]:
        assert torch.equal(new[k], src['roi_head.reid_stage.' + k.split('.', 3)[3]])
    # after QC pre-training there is no bridge to replicate: the cascade bridges re-init
    new, rep = convert_pretrained_state(_pretrained(), target, load_share=True,
                                        replicate_cascade=True)
    assert 'cascade.bridges.0.linear.weight' in rep.reinitialised
    assert 'cascade.reg_heads.1.mlp.0.weight' in rep.copied


def test_shape_changes_are_dropped_not_loaded():
    """Shared d_r 128 → separate d_r 64 without load_share: the projector does not fit
    and is reported (the d_r 128 → 2048 case of SPNet-L)."""
    new, rep = convert_pretrained_state(_pretrained(), _state(sep=True))
    reason = rep.dropped['roi_head.reid_proj.projs.0.weight']
    assert reason.startswith('shape') and 'roi_head.reid_proj.projs.0.weight' not in new
    assert 'roi_head.reid_stage.stage.downsample.0.weight' in new


def test_nothing_matched_is_an_error():
    with pytest.raises(ValueError, match='no weight of the pre-training checkpoint fits'):
        convert_pretrained_state({'fc.weight': torch.zeros(3, 3)}, _state())
    with pytest.raises(ValueError, match='pretrain_path'):
        convert_pretrained_state(_pretrained(), _state(), pretrain_path='both')


def test_init_cfg_loads_over_the_imagenet_init(tmp_path):
    src = _pretrained(trained_bridge=True)
    ckpt = tmp_path / 'pt.pth'
    torch.save(dict(state_dict=src, meta=dict()), str(ckpt))
    cfg = _small_cfg(cascade=2, sep=True)
    cfg.init_cfg = dict(type='SPNetPretrained', checkpoint=str(ckpt), load_share=True,
                        replicate_cascade=True)
    model = MODELS.build(cfg)
    model.init_weights()
    sd = model.state_dict()
    # the stage-4 sync of init_weights ran first; the checkpoint's conv5 copy wins
    k = 'roi_head.reid_stage.stage.downsample.0.weight'
    assert torch.equal(sd[k], src[k]) and torch.equal(sd[k.replace('reid_stage', 'loc_stages.1')],
                                                      src[k])
    trunk = next(k for k in src if k.startswith('backbone.'))
    assert torch.equal(sd[trunk], src[trunk])
    assert model.transfer_report.copied and model.init_cfg['type'] == 'SPNetPretrained'


def _tool(args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, osp.join(
        ROOT, 'tools/model_converters/spnet_pretrain_to_finetune.py')] + args, env=env,
        capture_output=True, text=True, cwd=str(cwd))


def test_converter_tool_and_a_hostile_checkpoint(tmp_path):
    from mmengine.config import Config
    cfg = osp.join(ROOT, 'configs/spnet/spnet-s_convnext-atto_quickstart_synthetic-prw.py')
    torch.manual_seed(3)
    src = {k: v.clone() for k, v in MODELS.build(Config.fromfile(cfg).model).state_dict().items()}
    src['bbox_head.reg_head.mlp.0.weight'] += 1.0
    src['teacher.module.neck.fpn_convs.0.conv.weight'] = torch.ones(2)
    ckpt, out = tmp_path / 'pt.pth', tmp_path / 'ft.pth'
    torch.save(dict(state_dict=src, meta=dict()), str(ckpt))
    proc = _tool([cfg, str(ckpt), str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'pre-training only' in proc.stdout and 'bridge after QC' in proc.stdout
    new = torch.load(str(out), weights_only=True)['state_dict']
    assert torch.equal(new['bbox_head.reg_head.mlp.0.weight'], src['bbox_head.reg_head.mlp.0.weight'])
    assert not any(k.startswith(('teacher.', 'roi_head.loss_reid.', 'bbox_head.bridge.'))
                   for k in new)
    # a checkpoint of something else: refused, nothing written
    torch.save(dict(state_dict={'fc.weight': torch.zeros(3, 3)}), str(tmp_path / 'other.pth'))
    proc = _tool([cfg, str(tmp_path / 'other.pth'), str(tmp_path / 'x.pth')], tmp_path)
    assert proc.returncode != 0 and 'no weight of the pre-training checkpoint fits' in proc.stderr
    assert not (tmp_path / 'x.pth').exists()

    marker = tmp_path / 'pwned'

    class Payload:
        def __reduce__(self):
            return (os.system, (f'touch {marker}',))

    bad = tmp_path / 'bad.pth'
    torch.save(dict(state_dict=dict(src, evil=Payload()), meta=dict()), str(bad))
    proc = _tool([cfg, str(bad), str(tmp_path / 'y.pth')], tmp_path)
    assert proc.returncode != 0 and not marker.exists()
    from mmpsearch.models.utils.pretrain_transfer import load_pretrained_checkpoint
    with pytest.raises(Exception):
        load_pretrained_checkpoint(str(bad))
    assert not marker.exists()
