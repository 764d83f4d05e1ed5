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
