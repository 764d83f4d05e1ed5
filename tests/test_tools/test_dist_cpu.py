# Copyright (c) mmpsearch contributors. All rights reserved.
"""The whole distributed path on the CPU, as a user runs it: ``tools/dist_train.sh`` with
2 processes (gloo, DDP, the distributed sampler, the OIM LUT/queue and ProtoNorm
statistics synchronised over ranks), then ``tools/dist_test.sh`` with 2 processes
(gathered metric and dump) against ``tools/test.py`` with one; the dump is then
re-evaluated by ``tools/eval_dump.py`` and drawn by ``browse_results.py``, each in a fresh
process as the quick start runs them.

A small hook, imported by the config through ``custom_imports`` as a user would add one,
saves every rank's final model state, so the ranks can be compared (the checkpoint holds
rank 0's only)."""
import glob
import json
import os.path as osp
import socket

import numpy as np
import pytest
import torch

from tests.user_process import REPO, run_as_user, user_env

_HOOK = '''
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SaveRankStateHook(Hook):
    """Save this rank's model state (weights and buffers) after training."""

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save(model.state_dict(), osp.join(runner.work_dir, f'rank{get_rank()}.pth'))
'''

# the quick-start config at a tiny size, with ProtoNorm in the re-id projection (its
# statistics are reduced over ranks; BatchNorm's running statistics stay per rank)
_CONFIG = '''
_base_ = {base!r}
custom_imports = dict(imports=['mmpsearch', 'mmpretrain.models', 'save_rank_state_hook'],
                      allow_failed_imports=False)
data_root = {data_root!r}
model = dict(roi_head=dict(norm_cfg=dict(_delete_=True, type='ProtoNorm1d', affine=False),
                           loss_reid=dict(num_person_ids=8, queue_size=16)),
             # an untrained detector scores low: keep its 20 best boxes per image, so the
             # search numbers compare detections too
             test_cfg=dict(bbox_head=dict(score_thr=0.0, max_per_img=20),
                           cascade=dict(max_per_img=20)))
loader = dict(num_workers=0, persistent_workers=False)
train_dataloader = dict(batch_size=2, **loader, dataset=dict(data_root=data_root))
val_dataloader = dict(**loader, dataset=dict(data_root=data_root))
test_dataloader = dict(**loader, dataset=dict(data_root=data_root))
val_evaluator = dict(det_thresh=0.0)
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=2, val_interval=100)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=1)]
custom_hooks = [dict(type='SaveRankStateHook')]
default_hooks = dict(logger=dict(interval=1), visualization=dict(draw=False))
'''

_MEMORIES = ('roi_head.loss_reid.lut', 'roi_head.loss_reid.queue', 'roi_head.loss_reid.queue_ptr',
             'roi_head.reid_proj.norms.0.running_mean', 'roi_head.reid_proj.norms.0.running_var')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _test_metrics(work_dir) -> dict:
    logs = glob.glob(osp.join(work_dir, '*', '*.json'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        return json.loads(f.read().splitlines()[-1])


def test_two_process_cpu_training_and_testing(tmp_path):
    run_as_user('python tools/make_synthetic.py --out synth --layout prw --seed 0 '
                '--num-train-frames 8 --num-test-frames 6 --num-train-ids 4 '
                '--num-test-ids 3 --image-size 192 128', cwd=tmp_path)
    (tmp_path / 'save_rank_state_hook.py').write_text(_HOOK)
    base = osp.join(REPO, 'configs', 'spnet',
                    'spnet-s_convnext-atto_quickstart_synthetic-prw.py')
    (tmp_path / 'tiny.py').write_text(_CONFIG.format(base=base,
                                                     data_root=str(tmp_path / 'synth')))
    env = user_env()
    env['PYTHONPATH'] += ':' + str(tmp_path)  # the hook module, as a user's own code
    # one thread per process everywhere (torch.distributed.run's default for its
    # workers): a kernel run with another thread count sums in another order, and the
    # single-process test would differ from the 2-process one in the last bits
    env['OMP_NUM_THREADS'] = '1'

    # 2 processes x 2 images x 2 iterations x 2 epochs; README's command line
    env['PORT'] = str(_free_port())
    run_as_user('bash tools/dist_train.sh tiny.py 2 --work-dir train', cwd=tmp_path, env=env)
    rank0 = torch.load(tmp_path / 'train' / 'rank0.pth', weights_only=True)
    rank1 = torch.load(tmp_path / 'train' / 'rank1.pth', weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f'{key} differs between the ranks'
    assert all(k in rank0 for k in _MEMORIES)
    # the memories were written: labelled identities in the LUT, entries in the queue,
    # ProtoNorm statistics moved away from their initial (0, 1)
    assert rank0['roi_head.loss_reid.lut'].abs().sum(1).gt(0).sum() >= 2
    # (the pointer wraps round the 16 slots, so count the written rows instead)
    assert rank0['roi_head.loss_reid.queue'].abs().sum(1).gt(0).sum() > 0
    assert not torch.equal(rank0['roi_head.reid_proj.norms.0.running_mean'],
                           torch.zeros_like(rank0['roi_head.reid_proj.norms.0.running_mean']))
    # training changed the weights (same on both ranks, checked above)
    ckpt = torch.load(tmp_path / 'train' / 'epoch_2.pth', weights_only=False)
    assert ckpt['meta']['iter'] == 4

    ckpt_path = osp.join('train', 'epoch_2.pth')
    env['PORT'] = str(_free_port())
    run_as_user(f'bash tools/dist_test.sh tiny.py {ckpt_path} 2 --work-dir test2 '
                '--out test2.pkl', cwd=tmp_path, env=env)
    run_as_user(f'python tools/test.py tiny.py {ckpt_path} --work-dir test1 --out test1.pkl',
                cwd=tmp_path, env=env)
    one, two = _test_metrics(tmp_path / 'test1'), _test_metrics(tmp_path / 'test2')
    assert one.keys() == two.keys()
    assert {k: v for k, v in one.items() if k not in ('time', 'data_time')} == \
        {k: v for k, v in two.items() if k not in ('time', 'data_time')}
    assert one['reid_standard/mAP'] > 0

    # the dump re-evaluated offline gives the test's numbers; the picture is drawn
    run_as_user('python tools/eval_dump.py tiny.py test2.pkl --out-json offline.json',
                cwd=tmp_path, env=env)
    offline = json.loads((tmp_path / 'offline.json').read_text())
    compared = [k for k, v in offline.items() if isinstance(one.get(k), float)]
    assert 'reid_standard/mAP' in compared
    for key in compared:  # (the log keeps no counts: no_det_queries etc. are null there)
        assert offline[key] == pytest.approx(one[key], abs=1e-12), key
    run_as_user('python tools/analysis_tools/browse_results.py tiny.py test2.pkl '
                '--num-queries 2 --topk 3 --out examples.png', cwd=tmp_path, env=env)
    assert (tmp_path / 'examples.png').stat().st_size > 0

    from mmpsearch.evaluation import load_dump
    dump1, dump2 = load_dump(str(tmp_path / 'test1.pkl')), load_dump(str(tmp_path / 'test2.pkl'))
    assert [r['img_id'] for r in dump1['records']] == [r['img_id'] for r in dump2['records']]
    assert sum(len(r['det_scores']) for r in dump1['records']) > 0
    for r1, r2 in zip(dump1['records'], dump2['records']):
        np.testing.assert_array_equal(r1['det_bboxes'], r2['det_bboxes'])
        np.testing.assert_array_equal(r1['det_embeddings'], r2['det_embeddings'])
