# Copyright (c) mmpsearch contributors. All rights reserved.
"""Prototype-queue re-id loss (spnet.md §4.6) against a direct evaluation of the spec on
hand-made batches: duplicate identities, a re-enqueued identity, a wrapping queue; state
in buffers; two gloo ranks hold the queue of one process."""
import os
import socket
import sys

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from mmpsearch.models.losses import PrototypeQueueLoss
from mmpsearch.registry import MODELS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cq_dist_worker  # noqa: E402


class Reference:
    """§4.6 read literally, with Python lists: slot i holds (identity, prototype) or None."""

    def __init__(self, size, scale=10.0):
        self.slots, self.ptr, self.scale = [None] * size, 0, scale

    def step(self, student, labels, teacher):
        for pid in sorted(set(labels.tolist())):
            rows = [k for k, p in enumerate(labels.tolist()) if p == pid]
            proto = teacher[rows].mean(0)
            proto = proto / proto.norm()
            self.slots = [None if s is not None and s[0] == pid else s for s in self.slots]
            self.slots[self.ptr] = (pid, proto)
            self.ptr = (self.ptr + 1) % len(self.slots)
        valid = [s for s in self.slots if s is not None]
        losses = []
        for k, pid in enumerate(labels.tolist()):
            x = student[k] / student[k].norm()
            logits = torch.stack([self.scale * (x @ proto) for _, proto in valid])
            own = [p for p, _ in valid].index(pid)
            losses.append(-torch.log_softmax(logits, 0)[own])
        return torch.stack(losses).mean()


def _batches():
    g = torch.Generator().manual_seed(1)
    labels = [torch.tensor([5, 5, 9, 2, 5, 9]),   # duplicates: 3 x id 5, 2 x id 9
              torch.tensor([9, 11, 12, 13]),      # id 9 re-enqueued
              torch.tensor([20, 21, 22, 11])]     # the 5-slot queue wraps; id 11 again
    return [(torch.randn(len(y), 3, generator=g), y, torch.randn(len(y), 3, generator=g))
            for y in labels]


def test_matches_direct_evaluation_of_the_spec():
    loss = PrototypeQueueLoss(queue_size=5, feat_dim=3, scale=10.0)
    ref = Reference(5)
    for student, labels, teacher in _batches():
        student = student.requires_grad_(True)
        got = loss(student, labels, teacher_embeddings=teacher)
        want = ref.step(student.detach(), labels, teacher)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        got.backward()
        assert student.grad is not None and torch.isfinite(student.grad).all()
        # the queue buffers equal the reference slots
        for slot, entry in enumerate(ref.slots):
            if entry is None:
                assert loss.queue_ids[slot] == -1
            else:
                assert loss.queue_ids[slot] == entry[0]
                torch.testing.assert_close(loss.queue[slot], entry[1])
        assert int(loss.queue_ptr) == ref.ptr
    # 3 + 4 + 4 enqueues into 5 slots: [2 5 9 . .] -> [12 13 . 9 11] (old 9 invalidated,
    # wrapped) -> [22 13 11 20 21] (old 11 invalidated, then overwritten)
    assert loss.queue_ids.tolist() == [22, 13, 11, 20, 21] and int(loss.queue_ptr) == 1
    assert len(set(loss.queue_ids[loss.queue_ids >= 0].tolist())) == 5


def test_one_slot_per_identity_after_re_enqueue():
    loss = PrototypeQueueLoss(queue_size=6, feat_dim=2)
    loss(torch.randn(2, 2), torch.tensor([1, 2]))
    loss(torch.randn(1, 2), torch.tensor([1]))
    assert loss.queue_ids.tolist() == [-1, 2, 1, -1, -1, -1]


def test_unlabelled_rows_skipped_and_teacher_gets_no_gradient():
    loss = PrototypeQueueLoss(queue_size=4, feat_dim=2)
    x = torch.randn(3, 2, requires_grad=True)
    t = torch.randn(3, 2, requires_grad=True)
    out = loss(x, torch.tensor([4, -1, 6]), torch.tensor([True, True, False]),
               teacher_embeddings=t)
    assert loss.queue_ids.tolist() == [4, -1, -1, -1]
    assert float(out) == pytest.approx(0.0, abs=1e-6)  # one valid slot: log(1)
    out.backward()
    assert t.grad is None
    none = loss(x, torch.tensor([-1, -1, -1]))
    assert float(none) == 0.0 and none.requires_grad


def test_buffers_are_checkpointed_and_resumed_exactly():
    loss = MODELS.build(dict(type='PrototypeQueueLoss', queue_size=5, feat_dim=3))
    for student, labels, teacher in _batches()[:2]:
        loss(student, labels, teacher_embeddings=teacher)
    state = loss.state_dict()
    assert set(state) == {'queue', 'queue_ids', 'queue_ptr'}
    other = PrototypeQueueLoss(queue_size=5, feat_dim=3)
    other.load_state_dict(state)
    student, labels, teacher = _batches()[2]
    torch.testing.assert_close(other(student, labels, teacher_embeddings=teacher),
                               loss(student, labels, teacher_embeddings=teacher))
    assert torch.equal(other.queue, loss.queue) and torch.equal(other.queue_ids,
                                                                loss.queue_ids)


def test_too_many_identities_for_the_queue():
    loss = PrototypeQueueLoss(queue_size=2, feat_dim=2)
    with pytest.raises(ValueError, match='exceed the queue of 2 slots'):
        loss(torch.randn(3, 2), torch.tensor([1, 2, 3]))


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_ranks_hold_the_queue_of_one_process(tmp_path):
    batches = cq_dist_worker.make_batches()
    ref = cq_dist_worker.run_steps(batches)
    mp.spawn(cq_dist_worker.worker, args=(2, _free_port(), str(tmp_path)), nprocs=2,
             join=True)
    got = [torch.load(tmp_path / f'rank{r}.pth') for r in range(2)]
    for rank in range(2):
        for key in ('queue', 'ids', 'ptr'):
            torch.testing.assert_close(got[rank][key], ref[key], msg=key)
    assert (ref['ids'] >= 0).sum() == 8  # the queue wrapped
    # rank losses are each rank's mean: their row-weighted mean is the 1-process loss
    torch.testing.assert_close((7 * got[0]['values'] + 3 * got[1]['values']) / 10,
                               ref['values'], atol=1e-5, rtol=1e-5)
