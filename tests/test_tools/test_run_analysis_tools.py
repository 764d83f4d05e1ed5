# Copyright (c) mmpsearch contributors. All rights reserved.
"""epoch_loss_means.py and compare_checkpoints.py, run as a user runs them."""
import json
import os
import os.path as osp
import subprocess
import sys

import torch

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _run(tool, *args):
    env = dict(os.environ, PYTHONPATH=_REPO)
    return subprocess.run([sys.executable, osp.join(_REPO, 'tools', 'analysis_tools', tool),
                           *args], capture_output=True, text=True, env=env, check=True,
                          cwd=_REPO).stdout


def test_epoch_loss_means_with_a_resumed_run(tmp_path):
    recs = [dict(epoch=1, iter=1, loss=4.0, loss_reid=2.0), dict(epoch=1, iter=2, loss=2.0,
                                                                  loss_reid=1.0),
            dict(epoch=2, iter=3, loss=9.0, loss_reid=9.0)]  # killed after this one
    resumed = [dict(epoch=2, iter=3, loss=1.0, loss_reid=0.5),
               dict(epoch=2, iter=4, loss=3.0, loss_reid=0.5)]
    for stamp, lines in (('20260101_000000', recs), ('20260101_010000', resumed)):
        d = tmp_path / stamp / 'vis_data'
        d.mkdir(parents=True)
        (d / 'scalars.json').write_text(
            '\n'.join(json.dumps(r) for r in lines + [dict(coco=1.0, step=1)]) + '\n')
    out = _run('epoch_loss_means.py', str(tmp_path)).splitlines()
    assert out[0] == '| epoch | iterations | loss | loss_reid |'
    assert out[2] == '| 1 | 2 | 3.0000 | 1.5000 |'
    assert out[3] == '| 2 | 2 | 2.0000 | 0.5000 |'


def test_compare_checkpoints(tmp_path):
    a = {'teacher.w': torch.ones(2), 'roi_head.loss_reid.queue': torch.zeros(3),
         'x': torch.ones(1)}
    b = dict(a, x=torch.full((1, ), 1.5))
    torch.save(dict(state_dict=a), tmp_path / 'a.pth')
    torch.save(dict(state_dict=b), tmp_path / 'b.pth')
    out = _run('compare_checkpoints.py', str(tmp_path / 'a.pth'), str(tmp_path / 'b.pth'),
               '--groups', 'teacher.', 'roi_head.loss_reid.')
    assert 'teacher.: 1/1 tensors identical, max |diff| 0' in out
    assert 'roi_head.loss_reid.: 1/1 tensors identical' in out
    assert '(all): 2/3 tensors identical, max |diff| 0.5' in out


def test_check_resume(tmp_path):
    """check_resume.py restores a checkpoint written by a runner of the quick QC
    pre-training config exactly (model, teacher, queue, generators)."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmpsearch.datasets.synthetic import make_synthetic
    from mmpsearch.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    data = tmp_path / 'coco'
    make_synthetic(str(data), layout='coco', num_train_frames=4, num_test_frames=2)
    config = osp.join(_REPO, 'configs', 'spnet',
                      'spnet-s-qcpt_convnext-atto_quick_synthetic-coco.py')
    options = [f'train_dataloader.dataset.data_root={data}/',
               'train_dataloader.dataset.indices=4', 'train_dataloader.num_workers=0']
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(o.split('=', 1) for o in options[:1]))
    cfg.train_dataloader.dataset.indices = 4
    cfg.train_dataloader.num_workers = 0
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.param_schedulers = runner.build_param_scheduler(runner.param_schedulers)
    runner._init_model_weights()
    model = runner.model
    model.roi_head.loss_reid.enqueue(torch.tensor([3, 9]), torch.randn(2, 64))
    model.update_teacher()
    runner.save_checkpoint(str(tmp_path), 'epoch_1.pth')
    out = _run('check_resume.py', config, str(tmp_path / 'epoch_1.pth'), '--groups',
               'teacher.', 'roi_head.loss_reid.', '--cfg-options', *options)
    assert 'roi_head.loss_reid.: 3/3 tensors identical to the checkpoint, max |diff| 0' in out
    assert 'random generators restored from the checkpoint: True' in out
    tensors = sum(1 for _ in model.state_dict())
    assert f'(all): {tensors}/{tensors} tensors identical' in out
