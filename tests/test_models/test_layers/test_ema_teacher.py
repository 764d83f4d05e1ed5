# Copyright (c) mmpsearch contributors. All rights reserved.
"""EMA teacher (spnet.md §3.10): θ_k ← m θ_k + (1 − m) θ_q on parameters, buffers left
alone, no gradients, state in the state dict."""
import pytest
import torch
from torch import nn

from mmpsearch.models.layers import TeacherEMA
from mmpsearch.registry import MODELS


def _student():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_update_is_the_momentum_formula_and_leaves_buffers_alone():
    student = _student()
    teacher = MODELS.build(dict(type='TeacherEMA', model=student, momentum=1e-4))
    assert isinstance(teacher, TeacherEMA)
    assert not any(p.requires_grad for p in teacher.parameters())
    before = {k: v.clone() for k, v in teacher.module.state_dict().items()}
    # the student trains: its parameters and its BatchNorm statistics change
    student.train()
    student(torch.randn(8, 3) * 3 + 1)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    teacher.update_parameters(student)
    m = 0.9999
    for name, p_q in student.named_parameters():
        want = m * before[name] + (1 - m) * p_q.detach()
        torch.testing.assert_close(teacher.module.state_dict()[name], want, rtol=0, atol=1e-6)
    for name, _ in student.named_buffers():  # running_mean / var / num_batches_tracked
        assert torch.equal(teacher.module.state_dict()[name], before[name]), name
    assert not torch.equal(student[1].running_mean, before['1.running_mean'])
    assert int(teacher.steps) == 1


def test_first_update_averages_and_sync_copies_everything():
    student = _student()
    teacher = TeacherEMA(student, momentum=0.5)
    with torch.no_grad():
        student[0].weight.fill_(1.0)
        teacher.module[0].weight.fill_(3.0)
    teacher.update_parameters(student)  # mmengine would copy at steps == 0
    assert torch.equal(teacher.module[0].weight, torch.full((4, 3), 2.0))
    student[1].running_mean.fill_(5.0)
    teacher.sync(student)
    assert torch.equal(teacher.module[1].running_mean, student[1].running_mean)
    assert torch.equal(teacher.module[0].weight, student[0].weight)


def test_state_dict_round_trip_and_mismatch():
    student = _student()
    teacher = TeacherEMA(student, momentum=0.1)
    teacher.update_parameters(student)
    other = TeacherEMA(_student(), momentum=0.1)
    other.load_state_dict(teacher.state_dict())
    assert int(other.steps) == 1
    for a, b in zip(other.state_dict().values(), teacher.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(KeyError, match='other parameters'):
        teacher.update_parameters(nn.Linear(3, 4))
