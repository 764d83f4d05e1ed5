# Copyright (c) mmpsearch contributors. All rights reserved.
"""NonFiniteCheckHook: a run stops at the first non-finite loss or gradient (after a loss
scaler had its chance), with a message naming the iteration and the loss terms, and no
checkpoint with non-finite tensors is ever written."""
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmpsearch.engine.hooks import NonFiniteCheckHook, NonFiniteError, non_finite_tensors
from mmpsearch.registry import HOOKS
from tests.test_engine.test_hooks import nonfinite_toy  # noqa: F401  (registers the toys)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
TOY = osp.join(osp.dirname(osp.abspath(__file__)), 'nonfinite_toy.py')


def _cfg(work_dir, model, max_iters=6, optim_wrapper=None, hook=None, max_keep_ckpts=-1):
    return dict(
        model=dict(type='NonFiniteToyModel', **model),
        work_dir=str(work_dir),
        default_scope='mmpsearch',
        train_dataloader=dict(
            dataset=dict(type='NonFiniteToyDataset', serialize_data=False),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2, num_workers=0, collate_fn=dict(type='default_collate')),
        optim_wrapper=optim_wrapper or dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False,
                            max_keep_ckpts=max_keep_ckpts),
            logger=dict(type='LoggerHook', interval=1),
            non_finite=hook or dict(type='NonFiniteCheckHook')),
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING')


def _checkpoints(work_dir):
    return sorted(glob.glob(osp.join(str(work_dir), 'iter_*.pth')),
                  key=lambda p: int(osp.basename(p)[5:-4]))


def _assert_all_checkpoints_finite(work_dir, last_expected):
    ckpts = _checkpoints(work_dir)
    for path in ckpts:
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
        assert non_finite_tensors(ckpt) == [], path
    with open(osp.join(str(work_dir), 'last_checkpoint')) as f:
        assert osp.basename(f.read().strip()) == last_expected
    return [osp.basename(p) for p in ckpts]


def test_default_runtime_registers_it():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'default_runtime.py'))
    assert cfg.default_hooks.non_finite.type == 'NonFiniteCheckHook'
    hook = HOOKS.build(cfg.default_hooks.non_finite)
    assert isinstance(hook, NonFiniteCheckHook) and hook.check_grads


def test_nan_loss_stops_at_that_iteration(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, dict(fail='loss', at=3)))
    with pytest.raises(NonFiniteError) as err:
        runner.train()
    msg = str(err.value)
    # the gradient check sees the NaN first (before the optimiser step) and names the
    # loss terms recorded in the forward pass
    assert 'Non-finite loss at iteration 3: loss_aux;' in msg
    assert 'loss_aux=nan' in msg and 'loss_fit=' in msg and 'linear.weight' in msg
    assert 'iter_2.pth' in msg  # the last good checkpoint, resumable
    assert runner.iter == 2
    assert _assert_all_checkpoints_finite(tmp_path, 'iter_2.pth') == ['iter_1.pth',
                                                                      'iter_2.pth']
    assert non_finite_tensors(runner.model.state_dict()) == []  # no NaN update applied


def test_nan_loss_without_gradient_check_stops_after_the_iteration(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, dict(fail='loss', at=2),
                                  hook=dict(type='NonFiniteCheckHook', check_grads=False)))
    with pytest.raises(NonFiniteError, match=r'Non-finite loss at iteration 2.*loss_aux'):
        runner.train()
    assert _assert_all_checkpoints_finite(tmp_path, 'iter_1.pth') == ['iter_1.pth']


def test_huge_learning_rate_stops_at_the_first_nan(tmp_path):
    cfg = _cfg(tmp_path, dict(), optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e30)))
    runner = Runner.from_cfg(cfg)
    with pytest.raises(NonFiniteError, match='iteration 2') as err:
        runner.train()
    assert 'loss_fit=inf' in str(err.value) or 'loss_fit=nan' in str(err.value)
    assert _assert_all_checkpoints_finite(tmp_path, 'iter_1.pth') == ['iter_1.pth']


def test_infinite_gradient_stops_before_the_step(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, dict(fail='grad', at=2)))
    with pytest.raises(NonFiniteError) as err:
        runner.train()
    msg = str(err.value)
    assert 'Non-finite gradients at iteration 2 from a finite loss' in msg
    assert 'linear.weight' in msg
    assert 'loss_fit=' in msg  # the (finite) loss terms of the iteration
    assert non_finite_tensors(runner.model.state_dict()) == []
    _assert_all_checkpoints_finite(tmp_path, 'iter_1.pth')


def test_non_finite_state_is_never_saved(tmp_path):
    # a buffer turns NaN while every loss and gradient stays finite; with max_keep_ckpts=1
    # CheckpointHook deletes its old file before writing a new one, so the state is checked
    # before it runs
    runner = Runner.from_cfg(_cfg(tmp_path, dict(fail='buffer', at=3), max_keep_ckpts=1))
    with pytest.raises(NonFiniteError, match=r'iteration 3.*state_dict\.running'):
        runner.train()
    assert _assert_all_checkpoints_finite(tmp_path, 'iter_2.pth') == ['iter_2.pth']


def test_before_save_checkpoint_refuses_non_finite_tensors(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, dict()))
    hook = NonFiniteCheckHook()
    good = dict(state_dict=dict(w=torch.ones(2)), optimizer=dict(state={0: dict(
        momentum_buffer=torch.zeros(2))}), meta=dict(epoch=1))
    hook.before_save_checkpoint(runner, good)
    bad = dict(good, ema_state_dict=dict(w=torch.tensor([1.0, float('inf')])))
    with pytest.raises(NonFiniteError, match='ema_state_dict.w'):
        hook.before_save_checkpoint(runner, bad)
    assert non_finite_tensors(dict(a=[torch.tensor(1.0), dict(b=torch.tensor(float('nan')))],
                                   c=torch.tensor([1]))) == ['a.1.b']


def _amp(**kw):
    return dict(type='CpuAmpOptimWrapper', optimizer=dict(type='SGD', lr=0.01), **kw)


def test_amp_skipped_step_does_not_stop_the_run(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, dict(fail='grad', at=2), optim_wrapper=_amp()))
    runner.train()
    assert runner.iter == 6
    # the scaler saw the infinite gradients, skipped that step and halved its scale
    assert runner.optim_wrapper.loss_scaler.get_scale() == 8.0
    assert non_finite_tensors(runner.model.state_dict()) == []
    _assert_all_checkpoints_finite(tmp_path, 'iter_6.pth')


def test_amp_tolerates_a_short_non_finite_loss_streak(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, dict(fail='loss', at=2, repeat=3),
                                  optim_wrapper=_amp()))
    runner.train()
    assert runner.iter == 6
    _assert_all_checkpoints_finite(tmp_path, 'iter_6.pth')


def test_amp_persistent_non_finite_loss_stops(tmp_path):
    runner = Runner.from_cfg(_cfg(tmp_path, dict(fail='loss', at=2, repeat=100),
                                  optim_wrapper=_amp()))
    with pytest.raises(NonFiniteError, match=r'Non-finite loss at iteration 5 \(4 iterations '
                       r'in a row.*loss_aux'):
        runner.train()
    _assert_all_checkpoints_finite(tmp_path, 'iter_4.pth')


def test_tools_train_stops_a_nan_run(tmp_path):
    """A user's run through tools/train.py with the default runtime: stops at the NaN."""
    shutil.copy(TOY, tmp_path / 'nonfinite_toy.py')
    work_dir = tmp_path / 'work'
    config = tmp_path / 'toy_nan.py'
    config.write_text(
        f"_base_ = [{osp.join(ROOT, 'configs', '_base_', 'default_runtime.py')!r}]\n"
        "custom_imports = dict(imports=['mmpsearch', 'nonfinite_toy'],\n"
        "                      allow_failed_imports=False)\n"
        "model = dict(type='NonFiniteToyModel', fail='loss', at=3)\n"
        "train_dataloader = dict(dataset=dict(type='NonFiniteToyDataset'),\n"
        "    sampler=dict(type='DefaultSampler', shuffle=False), batch_size=2,\n"
        "    num_workers=0, collate_fn=dict(type='default_collate'))\n"
        "optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01))\n"
        "train_cfg = dict(by_epoch=False, max_iters=8)\n"
        "default_hooks = dict(checkpoint=dict(interval=1, by_epoch=False),\n"
        "                     logger=dict(interval=1))\n"
        "env_cfg = dict(dist_cfg=dict(backend='gloo'))\n"
        "log_processor = dict(by_epoch=False)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, str(tmp_path)]))
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'train.py'), str(config),
                           '--work-dir', str(work_dir)], env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert 'NonFiniteError: Non-finite loss at iteration 3: loss_aux' in out, out[-3000:]
    assert 'loss_aux=nan' in out, out[-3000:]
    assert _assert_all_checkpoints_finite(work_dir, 'iter_2.pth') == ['iter_1.pth',
                                                                      'iter_2.pth']


def test_epoch_based_run_keeps_the_last_good_epoch_checkpoint(tmp_path):
    cfg = _cfg(tmp_path, dict(fail='buffer', at=6), max_keep_ckpts=1)
    cfg['train_cfg'] = dict(by_epoch=True, max_epochs=3)
    cfg['default_hooks']['checkpoint'] = dict(type='CheckpointHook', interval=1,
                                              max_keep_ckpts=1)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(NonFiniteError, match=r'after iteration 8 \(epoch 2, batch 4\).*'
                       r'state_dict\.running.*epoch_1\.pth'):
        runner.train()
    assert sorted(os.listdir(tmp_path)).count('epoch_1.pth') == 1
    assert not osp.exists(tmp_path / 'epoch_2.pth')
    with open(tmp_path / 'last_checkpoint') as f:
        assert osp.basename(f.read().strip()) == 'epoch_1.pth'
