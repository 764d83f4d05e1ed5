# Copyright (c) mmpsearch contributors. All rights reserved.
"""tools/analysis_tools/train_trace.py as a user runs it: two runs under the same kernel
settings give bit-identical traces (the basis for comparing different CPU kernels)."""
import json
import os
import os.path as osp
import subprocess
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_TOOL = osp.join(_REPO, 'tools', 'analysis_tools', 'train_trace.py')
_CONFIG = osp.join(_REPO, 'configs', 'spnet',
                   'spnet-s_convnext-atto_quickstart_synthetic-prw.py')


def _run(*args):
    env = dict(os.environ, PYTHONPATH=_REPO, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, _TOOL, _CONFIG, *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_same_kernels_give_identical_traces(tmp_path):
    root = tmp_path / 'synthetic_prw'
    subprocess.run([sys.executable, osp.join(_REPO, 'tools/make_synthetic.py'), '--out',
                    str(root), '--layout', 'prw', '--seed', '0', '--num-train-frames', '6',
                    '--num-test-frames', '4', '--num-train-ids', '4', '--num-test-ids', '3'],
                   check=True, capture_output=True)
    common = ['--iters', '2', '--data-root', str(root), '--cfg-options',
              'train_dataloader.batch_size=2']
    first = _run(*common, '--out', str(tmp_path / 'a.json'))
    assert first.returncode == 0, first.stderr[-3000:]
    trace = json.loads((tmp_path / 'a.json').read_text())
    assert len(trace['iters']) == 2 and 'loss' in trace['iters'][0]
    assert trace['kernel']['cpu_capability'] and trace['kernel']['threads'] == 1
    assert 'capability' in first.stdout and 'iter    2:' in first.stdout
    second = _run(*common, '--compare', str(tmp_path / 'a.json'))
    assert second.returncode == 0, second.stderr[-3000:]
    assert 'identical over 2 iterations (weight sum equal: True)' in second.stdout


def test_compare_reports_the_first_difference():
    sys.path.insert(0, osp.dirname(_TOOL))
    try:
        import train_trace
    finally:
        sys.path.pop(0)
    a = dict(iters=[dict(loss=2.0), dict(loss=1.0), dict(loss=0.5)], weight_sum=10.0)
    b = dict(iters=[dict(loss=2.0), dict(loss=1.0 + 1e-6), dict(loss=0.6)], weight_sum=10.1)
    report = train_trace.compare(a, b)
    assert report.startswith('first difference at iteration 2 of 3')
    assert 'iter    3: loss 0.5 vs 0.6' in report


def test_missing_compare_file_is_named(tmp_path):
    res = _run('--iters', '1', '--compare', str(tmp_path / 'nope.json'))
    assert res.returncode != 0 and 'nope.json' in res.stderr
