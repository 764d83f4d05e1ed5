# Copyright (c) mmpsearch contributors. All rights reserved.
"""algo1 pair sampling and per-pair anchor selection (spnet.md §4.4, supplement Sec. 8)."""
import pytest
import torch

from mmpsearch.models.dense_heads.qc_pair_sampler import (PAIR_NEG, PAIR_OTHER, PAIR_SELF,
                                                          QCPairSampler)
from mmpsearch.registry import TASK_UTILS


def _batch():
    """4 images = 2 images x 2 views; identities 1..4 (image 0/1: {1, 2}, image 2/3: {3, 4})."""
    keys = torch.tensor([1, 2, 1, 2, 3, 4, 3, 4])
    imgs = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    return keys, imgs


def test_pair_masks():
    keys, imgs = _batch()
    inst, is_self = QCPairSampler.pair_masks(keys, imgs, keys, imgs, 4)
    assert inst.shape == (4, 8)
    assert torch.equal(is_self[0], torch.tensor([1, 1, 0, 0, 0, 0, 0, 0], dtype=torch.bool))
    assert torch.equal(inst[0], torch.tensor([1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.bool))
    assert torch.equal(inst[3], torch.tensor([0, 0, 0, 0, 1, 1, 1, 1], dtype=torch.bool))


@pytest.mark.parametrize('num_pairs', [3, 8, 12, 32])
def test_algo1_order_other_self_negative(num_pairs):
    keys, imgs = _batch()
    sampler = TASK_UTILS.build(dict(type='QCPairSampler', num_pairs=num_pairs))
    inst, is_self = sampler.pair_masks(keys, imgs, keys, imgs, 4)
    torch.manual_seed(0)
    pairs, kinds = sampler.sample_pairs(inst, is_self)
    n_other, n_self, n_neg = 8, 8, 16  # pools of this batch
    expected = ([PAIR_OTHER] * min(num_pairs, n_other)
                + [PAIR_SELF] * min(max(0, num_pairs - n_other), n_self)
                + [PAIR_NEG] * min(max(0, num_pairs - n_other - n_self), n_neg))
    assert kinds.tolist() == expected
    for (i, j), kind in zip(pairs.tolist(), kinds.tolist()):
        if kind == PAIR_OTHER:
            assert inst[i, j] and not is_self[i, j]
        elif kind == PAIR_SELF:
            assert is_self[i, j]
        else:
            assert not inst[i, j]
    assert len({tuple(p) for p in pairs.tolist()}) == len(pairs)  # no repeats


def test_pairs_are_random_within_a_pool():
    keys, imgs = _batch()
    sampler = QCPairSampler(num_pairs=2)
    inst, is_self = sampler.pair_masks(keys, imgs, keys, imgs, 4)
    seen = set()
    for seed in range(20):
        torch.manual_seed(seed)
        seen.add(tuple(map(tuple, sampler.sample_pairs(inst, is_self)[0].tolist())))
    assert len(seen) > 1


def test_exclude_mask():
    keys, imgs = _batch()
    sampler = QCPairSampler(num_pairs=100)
    inst, is_self = sampler.pair_masks(keys, imgs, keys, imgs, 4)
    exclude = torch.zeros_like(inst)
    exclude[1, 0] = True
    pairs, _ = sampler.sample_pairs(inst, is_self, exclude)
    assert [1, 0] not in pairs.tolist()
    assert len(pairs) == 31


def test_select_anchors_positive_pair():
    dist = torch.arange(200, dtype=torch.float).flip(0)  # anchor 199 nearest
    giou = torch.zeros(200)
    giou[:32] = torch.linspace(1, 0.5, 32)  # anchors 0..31 best by GIoU
    for order in ('index', 'distance'):
        sel = QCPairSampler(hard_order=order).select_anchors(dist, giou)
        assert sel.numel() == 64
        assert set(sel[:32].tolist()) == set(range(32))
        # Hard candidates: the 64 nearest = anchors 136..199, none taken by GIoU.
        hard = sel[32:].tolist()
        if order == 'index':  # released: lowest anchor indices among the candidates
            assert hard == list(range(136, 168))
        else:  # paper: the 32 nearest
            assert hard == list(range(199, 167, -1))


def test_select_anchors_overlap_and_negative_pair():
    dist = torch.arange(100, dtype=torch.float)  # anchor 0 nearest
    giou = torch.zeros(100)
    giou[:32] = 1.0 + torch.arange(32.)  # the GIoU top-32 are also the 32 nearest
    sel = QCPairSampler().select_anchors(dist, giou)
    assert sel.tolist()[32:] == list(range(32, 64))  # remaining nearest candidates
    neg = QCPairSampler().select_anchors(dist, None)
    assert neg.tolist() == list(range(64))


def test_bad_arguments():
    with pytest.raises(ValueError, match='algo1'):
        QCPairSampler(match_mode='other')
    with pytest.raises(ValueError, match='hard_order'):
        QCPairSampler(hard_order='giou')
