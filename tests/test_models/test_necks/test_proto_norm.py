# Copyright (c) mmpsearch contributors. All rights reserved.
"""ProtoNorm against a direct evaluation of Eq. 5-6 (spec oimnetpp.md §2)."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.models.backbones.resnet import Bottleneck
from mmdet.models.layers import ResLayer

from mmpsearch.models.necks import (KEY_BACKGROUND, KEY_EXCLUDED, KEY_SINGLETON,
                                    EmbeddingProjector, ProtoNorm1d, ProtoNorm2d,
                                    convert_batchnorm_to_protonorm, prototype_keys,
                                    prototype_keys_of)
from mmpsearch.registry import MODELS


def _hand_made_batch(c=6, seed=0):
    """One dominant identity (8 rows), three rare ones (1 row each), three unlabelled
    persons and four background rows, shuffled."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([3] * 8 + [0, 1, 2] + [-1] * 3 + [-1] * 4)
    known = torch.tensor([True] * 11 + [False] * 7)
    fg = torch.tensor([True] * 14 + [False] * 4)
    centres = torch.randn(5, c, generator=g) * 3
    x = torch.randn(18, c, generator=g)
    x[:8] += centres[3]
    x[8:11] += centres[:3]
    perm = torch.randperm(18, generator=g)
    return x[perm], labels[perm], known[perm], fg[perm]


def _direct_stats(x, groups):
    """Eq. 5-6 by hand: ``groups`` is a list of row-index lists, one per prototype."""
    protos = torch.stack([x[idx].mean(0) for idx in groups])
    mu = protos.mean(0)
    var = ((x - mu)**2).mean(0)
    return mu, var


def test_prototype_keys_released_and_paper():
    _, labels, known, fg = _hand_made_batch()
    rel = prototype_keys(labels, known, fg, 'released')
    pap = prototype_keys(labels, known, fg, 'paper')
    assert torch.equal(rel[known], labels[known]) and torch.equal(pap[known], labels[known])
    assert (rel[~fg] == KEY_BACKGROUND).all() and (rel[fg & ~known] == KEY_SINGLETON).all()
    assert (pap[~known] == KEY_EXCLUDED).all()
    with pytest.raises(ValueError, match='id_mode'):
        prototype_keys(labels, known, fg, 'other')


@pytest.mark.parametrize('id_mode', ['released', 'paper'])
def test_protonorm1d_equals_eq5_eq6(id_mode):
    x, labels, known, fg = _hand_made_batch()
    keys = prototype_keys(labels, known, fg, id_mode)
    groups = [torch.nonzero(known & (labels == t))[:, 0].tolist() for t in range(4)]
    if id_mode == 'released':
        groups.append(torch.nonzero(~fg)[:, 0].tolist())  # background: one prototype
        groups += [[i] for i in torch.nonzero(fg & ~known)[:, 0].tolist()]  # each its own
    mu, var = _direct_stats(x, groups)
    pn = ProtoNorm1d(6, momentum=0.1)
    y = pn(x, keys)
    torch.testing.assert_close(y, (x - mu) / torch.sqrt(var + 1e-5))
    n = x.shape[0]
    torch.testing.assert_close(pn.running_mean, 0.1 * mu)
    torch.testing.assert_close(pn.running_var, 0.9 + 0.1 * var * n / (n - 1))
    # Second step: exponential moving average from the current state.
    x2 = x.flip(0) * 2 + 1
    mu2, var2 = _direct_stats(x2, [[n - 1 - i for i in g] for g in groups])
    pn(x2, keys.flip(0))
    torch.testing.assert_close(pn.running_mean, 0.9 * 0.1 * mu + 0.1 * mu2)
    torch.testing.assert_close(pn.running_var,
                               0.9 * (0.9 + 0.1 * var * n / (n - 1)) + 0.1 * var2 * n / (n - 1))


def test_protonorm_vs_batchnorm_on_long_tailed_batch():
    """The paper's claim (Sec. 3.2, Fig. 1): BatchNorm's mean is pulled to the dominant
    identity; ProtoNorm's is the centroid of the identities, which keeps minority identities
    apart after L2 normalisation."""
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[4., 4.], [-4., 4.], [4., -4.], [-4., -4.]]) + 6.
    counts = [40, 1, 1, 1]
    x = torch.cat([centres[i] + 0.3 * torch.randn(k, 2, generator=g)
                   for i, k in enumerate(counts)])
    labels = torch.cat([torch.full((k, ), i) for i, k in enumerate(counts)])
    keys = prototype_keys(labels, torch.ones_like(labels, dtype=torch.bool),
                          torch.ones_like(labels, dtype=torch.bool))
    bn = torch.nn.BatchNorm1d(2, affine=False)
    pn = ProtoNorm1d(2)
    y_bn, y_pn = bn(x), pn(x, keys)
    dist_bn = (bn.running_mean / 0.1 - centres[0]).norm()
    dist_pn = (pn.running_mean / 0.1 - centres[0]).norm()
    assert dist_bn < dist_pn  # BN's mean sits near the dominant identity
    torch.testing.assert_close(pn.running_mean / 0.1, centres.mean(0), atol=0.3, rtol=0)

    def minority_cos(y):
        protos = F.normalize(torch.stack([F.normalize(y[labels == i], dim=1).mean(0)
                                          for i in range(4)]), dim=1)
        sim = protos @ protos.t()
        return sim[~torch.eye(4, dtype=torch.bool)].mean()

    assert minority_cos(y_pn) < minority_cos(y_bn)  # better inter-class separation


def test_eval_uses_running_stats_only():
    pn = ProtoNorm1d(6)
    pn.running_mean.copy_(torch.arange(6.))
    pn.running_var.copy_(torch.linspace(0.5, 2, 6))
    pn.eval()
    x = torch.randn(5, 6)
    y = pn(x)  # no keys needed
    torch.testing.assert_close(y, (x - torch.arange(6.)) / torch.sqrt(
        torch.linspace(0.5, 2, 6) + 1e-5))
    torch.testing.assert_close(pn(x[:1]), y[:1])  # row-independent
    assert pn.num_batches_tracked.item() == 0
    with pytest.raises(RuntimeError, match='prototype keys'):
        pn.train()(x)
    with pytest.raises(ValueError, match='keys of shape'):
        pn(x, torch.zeros(4, dtype=torch.long))


def test_single_row_guard():
    pn = ProtoNorm1d(3)
    pn(torch.randn(1, 3), torch.tensor([0]))
    assert torch.isfinite(pn.running_var).all()


def test_protonorm2d_equals_direct_formula_and_from_bn():
    x, labels, known, fg = _hand_made_batch(c=4)
    x = x[:, :, None, None] * torch.rand(1, 1, 3, 2) + torch.randn(18, 4, 3, 2) * 0.1
    keys = prototype_keys(labels, known, fg)
    groups = [torch.nonzero(keys == t)[:, 0].tolist() for t in [0, 1, 2, 3, KEY_BACKGROUND]]
    groups += [[i] for i in torch.nonzero(keys == KEY_SINGLETON)[:, 0].tolist()]
    protos = torch.stack([x[idx].mean(0) for idx in groups])  # (K, C, H, W) prototype maps
    mu = protos.mean((0, 2, 3))
    var = ((x - mu[None, :, None, None])**2).mean((0, 2, 3))
    bn = torch.nn.BatchNorm2d(4)
    bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-1, 1)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    pn = ProtoNorm2d.from_batchnorm(bn)
    for name in ('weight', 'bias', 'running_mean', 'running_var'):
        assert torch.equal(getattr(pn, name), getattr(bn, name))
    rm0, rv0 = bn.running_mean.clone(), bn.running_var.clone()
    y = pn(x, keys)
    want = (x - mu.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + 1e-5)
    torch.testing.assert_close(y, want * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1))
    n = 18 * 3 * 2
    torch.testing.assert_close(pn.running_mean, 0.9 * rm0 + 0.1 * mu)
    torch.testing.assert_close(pn.running_var, 0.9 * rv0 + 0.1 * var * n / (n - 1))


def test_convert_conv5_reslayer_and_register_keys():
    layer4 = ResLayer(Bottleneck, 1024, 512, 3, stride=2)
    assert convert_batchnorm_to_protonorm(layer4) == 10  # spec §2.6: 3 per block + downsample
    assert sum(isinstance(m, ProtoNorm2d) for m in layer4.modules()) == 10
    x = torch.randn(6, 1024, 6, 6)
    keys = torch.tensor([0, 0, 1, KEY_SINGLETON, KEY_BACKGROUND, KEY_BACKGROUND])
    with prototype_keys_of(layer4, keys) as num:
        assert num == 10
        out = layer4(x)
    assert out.shape == (6, 2048, 3, 3)
    with pytest.raises(RuntimeError):
        layer4(x)  # keys are cleared after the block
    layer4.eval()
    assert layer4(x).shape == (6, 2048, 3, 3)


@pytest.mark.parametrize('norm', ['none', 'BN', 'PN'])
def test_embedding_projector(norm):
    proj = MODELS.build(dict(type='EmbeddingProjector', in_channels=32, out_channels=8,
                             norm=norm))
    x = torch.randn(10, 32)
    keys = torch.tensor([0, 0, 0, 1, 2, KEY_SINGLETON, KEY_BACKGROUND, KEY_BACKGROUND, 3, 3])
    emb = proj(x, keys)
    assert emb.shape == (10, 8)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(10))
    assert proj.uses_prototypes == (norm == 'PN')
    proj.eval()
    torch.testing.assert_close(proj(x[:1]), proj(x)[:1])
    with pytest.raises(ValueError, match='norm must be'):
        EmbeddingProjector(32, 8, norm='GN')


def test_half_input_is_normalised_in_float32():
    x, labels, known, fg = _hand_made_batch()
    keys = prototype_keys(labels, known, fg)
    y32 = ProtoNorm1d(6)(x, keys)
    pn = ProtoNorm1d(6)
    y16 = pn(x.half(), keys)
    assert y16.dtype == torch.float16 and pn.running_mean.dtype == torch.float32
    torch.testing.assert_close(y16.float(), y32, atol=2e-2, rtol=1e-2)


def test_keys_of_rows_without_a_lut_row_are_unlabelled():
    labels = torch.tensor([2, -1, -1, -1])
    known = torch.tensor([True, True, False, False])  # row 1: an identity without a row
    fg = torch.tensor([True, True, True, False])
    assert prototype_keys(labels, known, fg, 'released').tolist() == [
        2, KEY_SINGLETON, KEY_SINGLETON, KEY_BACKGROUND]
    assert prototype_keys(labels, known, fg, 'paper').tolist() == [
        2, KEY_EXCLUDED, KEY_EXCLUDED, KEY_EXCLUDED]
