# Copyright (c) mmpsearch contributors. All rights reserved.
"""OIM / LOIM: loss values against a direct evaluation of Eq. 2-3, the vectorised memory
update against a plain sequential loop (spec oimnetpp.md §3.4, spnet.md §4.6)."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmpsearch.models.losses import LOIMLoss, OIMLoss
from mmpsearch.registry import MODELS


def _batch(n=12, d=8, num_ids=5, seed=0, repeat=True):
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, d, generator=g), dim=1)
    if repeat:  # repeated identities within the batch
        labels = torch.randint(0, num_ids, (n, ), generator=g)
    else:
        labels = torch.randperm(num_ids, generator=g)[:n]
    known = torch.rand(n, generator=g) > 0.3
    labels[~known] = -1
    ious = 0.5 + 0.5 * torch.rand(n, generator=g)
    return x, labels, known, ious


def _loop_update(lut, queue, ptr, x, labels, known, weights):
    """The released codes' per-sample loop (the reference), on the loss's normalised x."""
    lut, queue = lut.clone(), queue.clone()
    x = F.normalize(x, dim=1)
    for i in range(x.shape[0]):
        if known[i]:
            y = int(labels[i])
            v = (1 - weights[i]) * lut[y] + weights[i] * x[i]
            lut[y] = v / v.norm()
        elif queue.shape[0]:
            queue[ptr] = x[i]
            ptr = (ptr + 1) % queue.shape[0]
    return lut, queue, ptr


def _ce_reference(x, labels, known, lut, queue, scale):
    mem = torch.cat([lut, queue])
    terms = []
    for i in range(x.shape[0]):
        if known[i]:
            logits = scale * mem @ x[i]
            terms.append(-logits[labels[i]] + torch.logsumexp(logits, 0))
    return terms


def test_registered_and_buffers_in_state_dict():
    loss = MODELS.build(dict(type='LOIMLoss', num_person_ids=4, queue_size=3, feat_dim=8))
    assert isinstance(loss, LOIMLoss)
    assert set(loss.state_dict()) == {'lut', 'queue', 'queue_ptr'}
    with pytest.raises(TypeError, match='unknown arguments'):
        OIMLoss(4, 3, 8, foo=1)
    with pytest.raises(ValueError, match='reduction'):
        OIMLoss(4, 3, 8, reduction='mean')


@pytest.mark.parametrize('repeat', [True, False])
@pytest.mark.parametrize('queue_size', [0, 3, 50])
def test_oim_update_equals_sequential_loop(repeat, queue_size):
    loss = OIMLoss(num_person_ids=6, queue_size=queue_size, feat_dim=8)
    # Start from a non-trivial state: partly filled LUT, pointer not at 0.
    loss.lut[:3] = F.normalize(torch.randn(3, 8), dim=1)
    if queue_size:
        loss.queue_ptr.fill_(queue_size - 1)
    for step in range(3):
        x, labels, known, _ = _batch(n=6 if not repeat else 14, num_ids=6, seed=step,
                                     repeat=repeat)
        ref = _loop_update(loss.lut, loss.queue, int(loss.queue_ptr), x, labels, known,
                           torch.full((x.shape[0], ), 0.5))
        loss(x, labels, known)
        torch.testing.assert_close(loss.lut, ref[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(loss.queue, ref[1], atol=0, rtol=0)
        assert int(loss.queue_ptr) == ref[2]


@pytest.mark.parametrize('iou_lower', [0.7, 0.0])
def test_loim_update_equals_sequential_loop(iou_lower):
    loss = LOIMLoss(num_person_ids=5, queue_size=4, feat_dim=8, iou_lower=iou_lower, eps=0.1)
    x, labels, known, ious = _batch(n=16, num_ids=5, seed=3)
    ious[:4] = torch.tensor([0.2, 0.65, 0.8, 1.0])
    c = ious.clamp(iou_lower, 0.9)
    ref = _loop_update(loss.lut, loss.queue, 0, x, labels, known, c)
    loss(x, labels, known, ious)
    torch.testing.assert_close(loss.lut, ref[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(loss.queue, ref[1], atol=0, rtol=0)


@pytest.mark.parametrize('iou_lower,expected', [(0.7, [0.7, 0.7, 0.8, 0.9]),
                                                (0.0, [0.2, 0.65, 0.8, 0.9])])
def test_loim_momentum_per_iou(iou_lower, expected):
    """c = clip(IoU, lower, 1 - eps): released lower 0.7, paper lower 0 (spec §3.4, Eq. 8)."""
    loss = LOIMLoss(3, 2, 4, iou_lower=iou_lower, eps=0.1)
    w = loss.update_weights(torch.tensor([0.2, 0.65, 0.8, 1.0]), 4)
    torch.testing.assert_close(w, torch.tensor(expected))
    # One update from a known LUT row: v' = normalize((1 - c) v + c x), per IoU.
    for iou, c in zip([0.2, 0.65, 0.8, 1.0], expected):
        loss = LOIMLoss(3, 2, 4, iou_lower=iou_lower)
        loss.lut[1] = torch.tensor([1., 0, 0, 0])
        x = torch.tensor([[0., 1, 0, 0]])
        loss(x, torch.tensor([1]), torch.tensor([True]), torch.tensor([iou]))
        want = torch.tensor([1 - c, c, 0, 0]) / math.hypot(1 - c, c)
        torch.testing.assert_close(loss.lut[1], want)
    # OIM momentum 0.5 ignores the IoU.
    oim = OIMLoss(3, 2, 4)
    torch.testing.assert_close(oim.update_weights(torch.tensor([0.2, 1.0]), 2),
                               torch.tensor([0.5, 0.5]))


def test_oimnetpp_reduction_value_and_gradient_use_old_memories():
    loss = OIMLoss(num_person_ids=5, queue_size=4, feat_dim=8, scale=30.)
    loss.lut.copy_(F.normalize(torch.randn(5, 8), dim=1))
    loss.queue[:2] = F.normalize(torch.randn(2, 8), dim=1)
    lut0, queue0 = loss.lut.clone(), loss.queue.clone()
    x, labels, known, _ = _batch(n=10, num_ids=5, seed=1)
    x1 = x.clone().requires_grad_(True)
    out = loss(x1, labels, known)
    assert not torch.equal(loss.lut, lut0)  # memories were updated in forward
    x2 = x.clone().requires_grad_(True)
    ref = torch.stack(_ce_reference(x2, labels, known, lut0, queue0, 30.)).mean()
    torch.testing.assert_close(out, ref)
    out.backward()
    ref.backward()
    # The gradient of the (unit) input is the same as with the pre-update memories, up to
    # the tangent projection of the loss's own L2 normalisation.
    g_ref = x2.grad - (x2.grad * x).sum(1, keepdim=True) * x
    torch.testing.assert_close(x1.grad, g_ref, atol=1e-5, rtol=1e-5)


def test_no_labelled_sample_gives_zero_not_nan():
    for reduction in ('oimnetpp', 'spnet'):
        loss = OIMLoss(4, 3, 8, reduction=reduction)
        x = torch.randn(3, 8, requires_grad=True)
        out = loss(x, torch.full((3, ), -1), torch.zeros(3, dtype=torch.bool))
        assert out.item() == 0.0 and not torch.isnan(out)
        out.backward()
        assert torch.equal(x.grad, torch.zeros_like(x))
        assert int(loss.queue_ptr) == 0  # 3 pushes into a queue of 3
        empty = loss(x[:0], torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool))
        assert empty.item() == 0.0


def test_spnet_reduction_masking_and_normaliser():
    loss = OIMLoss(num_person_ids=4, queue_size=3, feat_dim=8, reduction='spnet')
    loss.lut[0] = F.normalize(torch.randn(8), dim=0)
    loss.lut[2] = F.normalize(torch.randn(8), dim=0)
    loss.queue[0] = F.normalize(torch.randn(8), dim=0)
    lut0, queue0 = loss.lut.clone(), loss.queue.clone()
    x = F.normalize(torch.randn(5, 8), dim=1)
    labels = torch.tensor([0, 1, 2, -1, 1])
    known = labels >= 0
    out = loss(x, labels, known)
    # Direct evaluation of the masking rule (spec spnet.md §4.6).
    mem = torch.cat([lut0, queue0])
    empty = mem.abs().sum(1) == 0
    total = 0.
    for i in range(5):
        s = x[i] @ mem.t()
        s[empty] = -1.
        if known[i]:
            if empty[labels[i]]:
                s[labels[i]] = 1.
            total = total + F.cross_entropy(30. * s[None], labels[i:i + 1])
    torch.testing.assert_close(out, total / 5)  # summed over labelled, / all 5 samples


def test_eval_mode_does_not_update_and_bad_labels_raise():
    loss = OIMLoss(4, 3, 8).eval()
    x, labels, known, _ = _batch(n=6, num_ids=4)
    loss(x, labels, known)
    assert loss.lut.abs().sum() == 0 and loss.queue.abs().sum() == 0
    with pytest.raises(ValueError, match=r'person_labels in \[0, 4\)'):
        loss(x[:1], torch.tensor([7]), torch.tensor([True]))
    with pytest.raises(ValueError, match='ious'):
        LOIMLoss(4, 3, 8)(x, labels, known)


def test_half_precision_inputs_keep_float32_memories():
    loss = LOIMLoss(4, 3, 8)
    x, labels, known, ious = _batch(n=6, num_ids=4)
    out = loss(x.half(), labels, known, ious.half())
    assert out.dtype == torch.float32 and loss.lut.dtype == torch.float32


def test_loss_is_float32_under_autocast():
    loss = OIMLoss(4, 3, 8)
    loss.lut.copy_(F.normalize(torch.randn(4, 8), dim=1))
    x, labels, known, _ = _batch(n=6, num_ids=4)
    ref = torch.stack(_ce_reference(F.normalize(x, dim=1), labels, known, loss.lut.clone(),
                                    loss.queue.clone(), 30.)).mean()
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        out = loss(x, labels, known)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)
