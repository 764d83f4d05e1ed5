# Copyright (c) mmpsearch contributors. All rights reserved.
"""LwF (spnet.md §4.7): both formulas against a hand computation, and the ImageNet
classifier loaded from either checkpoint layout."""
import math

import pytest
import torch

from mmpsearch.models.layers import ConvNeXtClassifier
from mmpsearch.models.losses import LwFLoss

S = [[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]]
T = [[1.0, 0.0, 0.0], [-1.0, 2.0, 1.0]]


def _softmax(row, t):
    e = [math.exp(v / t) for v in row]
    return [v / sum(e) for v in e]


def test_released_formula_by_hand():
    """BCE-with-logits(input = log_softmax(s / 2), target = softmax(t / 2)), mean of B x C."""
    total = 0.0
    for s_row, t_row in zip(S, T):
        logp = [math.log(p) for p in _softmax(s_row, 2.0)]
        for x, y in zip(logp, _softmax(t_row, 2.0)):
            sig = 1 / (1 + math.exp(-x))
            total += -(y * math.log(sig) + (1 - y) * math.log(1 - sig))
    want = total / 6
    got = LwFLoss(temperature=2.0, formula='released')(torch.tensor(S), torch.tensor(T))
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_kl_formula_by_hand():
    """T^2 * KL(softmax(t / T) || softmax(s / T)), mean over the batch."""
    total = 0.0
    for s_row, t_row in zip(S, T):
        p_s, p_t = _softmax(s_row, 2.0), _softmax(t_row, 2.0)
        total += sum(q * math.log(q / p) for p, q in zip(p_s, p_t))
    want = 4.0 * total / 2
    loss = LwFLoss(temperature=2.0, formula='kl', loss_weight=1.0)
    assert loss(torch.tensor(S), torch.tensor(T)).item() == pytest.approx(want, rel=1e-6)
    assert loss(torch.tensor(T), torch.tensor(T)).item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_reaches_the_student_only_and_bad_args():
    s = torch.tensor(S, requires_grad=True)
    t = torch.tensor(T, requires_grad=True)
    LwFLoss()(s, t).backward()
    assert s.grad is not None and t.grad is None
    with pytest.raises(ValueError, match='formula'):
        LwFLoss(formula='ce')
    with pytest.raises(ValueError, match='temperature'):
        LwFLoss(temperature=0)


@pytest.mark.parametrize('layout', ['mmpretrain', 'torchvision'])
def test_classifier_loads_either_layout(layout):
    g = torch.Generator().manual_seed(0)
    nw, nb = torch.randn(8, generator=g), torch.randn(8, generator=g)
    fw, fb = torch.randn(5, 8, generator=g), torch.randn(5, generator=g)
    keys = (('backbone.norm3.weight', 'backbone.norm3.bias', 'head.fc.weight', 'head.fc.bias')
            if layout == 'mmpretrain' else
            ('classifier.0.weight', 'classifier.0.bias', 'classifier.2.weight',
             'classifier.2.bias'))
    state = dict(zip(keys, (nw, nb, fw, fb)), **{'backbone.stem.0.weight': torch.zeros(1)})
    cls = ConvNeXtClassifier(in_channels=8, num_classes=5)
    cls.load_classifier(state)
    c5 = torch.randn(2, 8, 3, 3, generator=g)
    pooled = c5.mean(dim=(2, 3))
    want = torch.nn.functional.layer_norm(pooled, (8, ), nw, nb, eps=1e-6) @ fw.t() + fb
    torch.testing.assert_close(cls(c5), want)
    with pytest.raises(KeyError, match='no ConvNeXt ImageNet classifier'):
        cls.load_classifier({'backbone.stem.0.weight': torch.zeros(1)}, 'trunk.pth')
    with pytest.raises(ValueError, match='shape'):
        ConvNeXtClassifier(in_channels=8, num_classes=7).load_classifier(state)
