# Copyright (c) mmpsearch contributors. All rights reserved.
"""ConvNeXt trunk with a deep-copyable stage 4 (spnet.md §3.1, §3.4)."""
import pytest
import torch
from mmpretrain.models import ConvNeXt

from mmpsearch.models.backbones import ConvNeXtStage, ConvNeXtTrunk
from mmpsearch.registry import MODELS

SMALL = dict(depths=[1, 1, 2, 2], channels=[8, 16, 32, 64])


def test_outputs_are_raw_stage_outputs():
    trunk = MODELS.build(dict(type='ConvNeXtTrunk', arch=SMALL, drop_path_rate=0.))
    assert isinstance(trunk, ConvNeXtTrunk)
    assert trunk.out_channels == (16, 32, 64)
    assert not any(n.startswith('norm') for n, _ in trunk.named_children())
    trunk.eval()
    x = torch.rand(2, 3, 64, 96)
    c3, c4, c5 = trunk(x)
    assert c3.shape == (2, 16, 8, 12) and c4.shape == (2, 32, 4, 6) and c5.shape == (2, 64, 2, 3)
    # Independent recomputation with the parent's modules: stage outputs, no extra norm.
    y = x
    for i in range(4):
        y = trunk.stages[i](trunk.downsample_layers[i](y))
    assert torch.equal(y, c5)


def test_parameter_names_match_mmpretrain():
    trunk = ConvNeXtTrunk(arch='tiny', out_norm=False)
    ref = ConvNeXt(arch='tiny', out_indices=(1, 2, 3), gap_before_final_norm=False)
    ref_keys = {k for k in ref.state_dict() if not k.startswith('norm')}
    assert set(trunk.state_dict()) == ref_keys


def test_drop_path_matches_torchvision_defaults():
    trunk = ConvNeXtTrunk(arch='tiny', drop_path_rate=0.1)
    rates = [blk.drop_path.drop_prob if hasattr(blk.drop_path, 'drop_prob') else 0.
             for stage in trunk.stages for blk in stage]
    # torchvision: p_k = 0.1 * k / (n_blocks - 1) for k = 0 .. 17.
    assert rates == pytest.approx([0.1 * k / 17 for k in range(18)], abs=1e-6)


def test_clone_stage4_is_an_independent_copy():
    trunk = ConvNeXtTrunk(arch=SMALL, drop_path_rate=0.2)
    copy = trunk.clone_stage4()
    assert isinstance(copy, ConvNeXtStage)
    assert (copy.in_channels, copy.out_channels) == (32, 64)
    assert copy.downsample[1].weight.data_ptr() != trunk.downsample_layers[3][1].weight.data_ptr()
    # Stochastic depth of the trunk's stage-4 blocks is kept (spnet.md §11.8).
    assert copy.blocks[-1].drop_path.drop_prob == trunk.stages[3][-1].drop_path.drop_prob
    with torch.no_grad():
        trunk.downsample_layers[3][1].weight.add_(1.0)
    assert not torch.equal(copy.downsample[1].weight, trunk.downsample_layers[3][1].weight)
    copy.load_from(trunk.stage4_state_dict())
    assert torch.equal(copy.downsample[1].weight, trunk.downsample_layers[3][1].weight)
    trunk.eval()
    copy.eval()
    c4 = torch.rand(3, 32, 8, 8)
    assert torch.allclose(copy(c4), trunk.stages[3](trunk.downsample_layers[3](c4)))


def test_rejects_non_four_stage_arch():
    with pytest.raises(ValueError, match='4 stages'):
        ConvNeXtTrunk(arch=dict(depths=[1, 1, 1], channels=[8, 16, 32]), out_indices=(0, 1, 2))


def test_torchvision_key_conversion_loads_into_trunk():
    from mmpsearch.models.backbones.convnext_weights import torchvision_to_mmpretrain
    trunk = ConvNeXtTrunk(arch=SMALL)
    gen = torch.Generator().manual_seed(0)
    # A torchvision-named state dict with the trunk's shapes (written from the torchvision
    # layout: stem/downsample Sequentials, CNBlock.block indices, layer_scale (C, 1, 1)).
    tv = {}
    for k, ch in enumerate(SMALL['channels']):
        ds = trunk.downsample_layers[k]
        if k == 0:
            tv['features.0.0.weight'] = torch.randn(ds[0].weight.shape, generator=gen)
            tv['features.0.1.weight'] = torch.randn(ch, generator=gen)
        else:
            tv[f'features.{2 * k}.0.weight'] = torch.randn(ds[0].weight.shape, generator=gen)
            tv[f'features.{2 * k}.1.weight'] = torch.randn(ds[1].weight.shape, generator=gen)
        for j, blk in enumerate(trunk.stages[k]):
            base = f'features.{2 * k + 1}.{j}'
            tv[f'{base}.layer_scale'] = torch.randn(ch, 1, 1, generator=gen)
            for idx, mod in (('0', blk.depthwise_conv), ('2', blk.norm),
                             ('3', blk.pointwise_conv1), ('5', blk.pointwise_conv2)):
                tv[f'{base}.block.{idx}.weight'] = torch.randn(mod.weight.shape, generator=gen)
    tv['classifier.2.weight'] = torch.randn(10, 64, generator=gen)
    converted = torchvision_to_mmpretrain(tv, prefix='')
    missing, unexpected = trunk.load_state_dict(converted, strict=False)
    assert not unexpected and all(k.endswith('.bias') for k in missing)
    assert torch.equal(trunk.stages[2][1].gamma, tv['features.5.1.layer_scale'].flatten())
    assert torch.equal(trunk.downsample_layers[3][1].weight, tv['features.6.1.weight'])
    with pytest.raises(KeyError, match='unexpected'):
        torchvision_to_mmpretrain({'features.1.0.block.4.weight': torch.zeros(1)})
