# Copyright (c) mmpsearch contributors. All rights reserved.
"""FixedNorm / BatchNorm logits (spnet.md §3.6, supplement Eq. 3-4, Table 9)."""
import math

import pytest
import torch

from mmpsearch.models.layers import BatchNormLogits, FixedNormLogits, chi_moments
from mmpsearch.registry import MODELS


def test_chi_moments_d128_match_spec():
    mu, s = chi_moments(128)
    # spnet.md §3.6: "For d = 128: mu = 11.29163, s = 0.70641".
    assert mu == pytest.approx(11.29163, abs=5e-6)
    assert s == pytest.approx(0.70641, abs=5e-6)


def test_chi_moments_independent_formula():
    # Eq. 4 evaluated directly with math.gamma for a small d.
    d = 16
    mu_ref = math.sqrt(2) * math.gamma((d + 1) / 2) / math.gamma(d / 2)
    mu, s = chi_moments(d)
    assert mu == pytest.approx(mu_ref, rel=1e-12)
    assert s == pytest.approx(math.sqrt(d - mu_ref**2), rel=1e-12)


def test_released_fallback_for_large_d():
    mu, s = chi_moments(2048, mode='released')
    assert mu == pytest.approx(math.sqrt(2048 - 0.5))
    assert s == pytest.approx(math.sqrt(0.5))
    mu_exact, s_exact = chi_moments(2048, mode='exact')
    assert mu_exact == pytest.approx(mu, rel=1e-4)
    assert s_exact == pytest.approx(s, rel=1e-3)


@pytest.mark.parametrize('dim', [16, 128, 2048])
@pytest.mark.parametrize('mode', ['released', 'exact'])
def test_standard_normal_offsets_give_unit_logits(dim, mode):
    gen = torch.Generator().manual_seed(dim)
    x_o = torch.randn(20000, dim, generator=gen, dtype=torch.float64)
    logits = FixedNormLogits(dim=dim, moment_mode=mode)(x_o)
    assert logits.shape == (20000,)
    # Standard errors: 1/sqrt(20000) = 0.007 for the mean, ~0.01 for the variance.
    assert float(logits.mean()) == pytest.approx(0.0, abs=0.035)
    assert float(logits.var()) == pytest.approx(1.0, abs=0.05)


def test_sign_and_norm_path():
    neg = FixedNormLogits(dim=128)
    pos = FixedNormLogits(dim=128, sign='pos')
    x = torch.zeros(3, 128)
    x[:, 0] = torch.tensor([0.0, neg.mu, 2 * neg.mu])
    assert torch.allclose(neg(x), torch.tensor([neg.mu / neg.s, 0.0, -neg.mu / neg.s]))
    assert torch.allclose(pos(x), -neg(x))
    # Small distance -> probability > 0.5 exactly when ||x_o|| < mu.
    assert bool((neg(x).sigmoid()[0] > 0.5) and (neg(x).sigmoid()[2] < 0.5))
    assert neg(x.half()).dtype == torch.float32
    assert not list(neg.parameters())


def test_bad_arguments():
    with pytest.raises(ValueError, match='sign'):
        FixedNormLogits(sign='minus')
    with pytest.raises(ValueError, match='dim'):
        chi_moments(0)
    with pytest.raises(ValueError, match='dim=128'):
        FixedNormLogits(dim=128)(torch.zeros(2, 64))


def test_batchnorm_logits():
    layer = MODELS.build(dict(type='BatchNormLogits', dim=8, sign='neg'))
    assert isinstance(layer, BatchNormLogits)
    x = torch.randn(64, 8) * 3
    out = layer(x)
    assert out.shape == (64,)
    # Training-mode BN of the norms: zero mean, unit variance, then negated.
    assert float(out.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float((-out).var(unbiased=False)) == pytest.approx(1.0, abs=1e-3)
    norms = x.norm(dim=1)
    assert torch.equal(out.argmax(), norms.argmin())
    single = layer(x[:1])  # batch of one: running statistics, no error
    assert torch.isfinite(single).all()
