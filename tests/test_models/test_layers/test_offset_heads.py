# Copyright (c) mmpsearch contributors. All rights reserved.
"""OC bridge and box MLP (spnet.md §3.5, §3.7)."""
import pytest
import torch
from torch import nn

from mmpsearch.models.layers import BoxRegressionMLP, OffsetBridge


def test_bridge_gives_negative_anchor_at_init():
    bridge = OffsetBridge(dim=128)
    x_a = torch.randn(5, 7, 128)
    assert torch.equal(bridge(x_a), -x_a)
    # mmengine's init_weights keeps the zero init.
    with torch.no_grad():
        bridge.linear.weight.normal_()
    bridge.init_weights()
    assert torch.equal(bridge(x_a), -x_a)


def test_bridge_learns_an_offset():
    bridge = OffsetBridge(dim=4)
    with torch.no_grad():
        bridge.linear.bias.fill_(1.0)
    x_a = torch.ones(2, 4)
    assert torch.equal(bridge(x_a), torch.zeros(2, 4))  # (0 x + 1) - x


def test_direct_bridge_starts_at_minus_identity():
    bridge = OffsetBridge(dim=8, mode='direct')
    x_a = torch.randn(3, 8)
    assert torch.allclose(bridge(x_a), -x_a)
    with pytest.raises(ValueError, match='combiner'):
        OffsetBridge(mode='sum')


def test_box_mlp_structure():
    mlp = BoxRegressionMLP(dim=128)
    linears = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    relus = [m for m in mlp.modules() if isinstance(m, nn.ReLU)]
    assert len(linears) == 5 and len(relus) == 4  # spnet.md §11.5
    assert linears[-1].out_features == 4
    assert mlp(torch.randn(10, 128)).shape == (10, 4)
