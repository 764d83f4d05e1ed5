# Copyright (c) mmpsearch contributors. All rights reserved.
"""tools/analysis_tools/anchor_coverage.py: the coverage numbers on a hand-made case, and
the tool as a user runs it on a small synthetic PRW-layout set."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_TOOL = osp.join(_REPO, 'tools', 'analysis_tools', 'anchor_coverage.py')
_CONFIG = osp.join(_REPO, 'configs', 'spnet',
                   'spnet-s_convnext-atto_quickstart_synthetic-prw.py')


def _tool():
    sys.path.insert(0, osp.dirname(_TOOL))
    try:
        import anchor_coverage
    finally:
        sys.path.pop(0)
    return anchor_coverage


def test_coverage_of_a_thin_person():
    mod = _tool()
    from mmpsearch.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    gen = dict(type='SizedAnchorGenerator', strides=[8, 16, 32, 64, 128],
               sizes=[[32, 40, 50], [64, 80, 101], [128, 161, 203], [256, 322, 406],
                      [512, 645, 812]], strides_from_image=True)
    # a 30 x 150 person (h/w 5) in a 256 x 192 frame shown at its own size
    boxes = [np.array([[100., 20., 130., 170.]], dtype=np.float32)]
    wide = mod.coverage(boxes, [(256, 192)], dict(gen, ratios=[0.5, 1.0, 2.0]), (192, 384),
                        32, 0.5)
    tall = mod.coverage(boxes, [(256, 192)], dict(gen, ratios=[2.0, 3.0, 4.5]), (192, 384),
                        32, 0.5)
    assert wide['best_iou'][0] < 0.5 and wide['num_pos'][0] == 0
    assert tall['best_iou'][0] >= 0.5 and tall['num_pos'][0] >= 1
    assert np.isclose(tall['aspect'][0], 5.0) and np.isclose(tall['height'][0], 150.0)
    table = mod.report(wide, 0.5)
    assert 'h/w 4-inf' in table and '100.0%' in table


def test_tool_runs_on_a_synthetic_set(tmp_path):
    root = tmp_path / 'synthetic_prw'
    subprocess.run([sys.executable, osp.join(_REPO, 'tools/make_synthetic.py'), '--out',
                    str(root), '--layout', 'prw', '--seed', '0', '--num-train-frames', '6',
                    '--num-test-frames', '4', '--num-train-ids', '4', '--num-test-ids', '3'],
                   check=True, capture_output=True)
    env = dict(os.environ, PYTHONPATH=_REPO)
    res = subprocess.run([sys.executable, _TOOL, _CONFIG, '--split', 'test', '--data-root',
                          str(root)], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'test split, WindowResize(192, 384)' in res.stdout
    assert 'ratios=[2.0, 3.0, 4.5]' in res.stdout
    assert any(line.split()[0] == 'all' for line in res.stdout.splitlines() if line.strip())
