# Copyright (c) mmpsearch contributors. All rights reserved.
"""tools/analysis_tools/benchmark_cuhk_load.py, run as a user runs it, at a tiny size (the
full-scale numbers are in docs/fidelity_data.md)."""
import json
import os
import os.path as osp
import subprocess
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_benchmark_cuhk_load_tiny(tmp_path):
    out = tmp_path / 'results.json'
    env = dict(os.environ, PYTHONPATH=_REPO)
    proc = subprocess.run(
        [sys.executable, osp.join(_REPO, 'tools', 'analysis_tools', 'benchmark_cuhk_load.py'),
         '--preset', 'tiny', '--out', str(tmp_path / 'tree'), '--files', 'G50', '--scipy',
         'G50', '--in-process', '--json', str(out)], cwd=str(tmp_path), env=env, capture_output=True,
        text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    runs = {(r['kind'], r['target']): r for r in res['runs']}
    assert sorted(runs) == [('dataset', 'G100'), ('dataset', 'all'), ('fast', 'G50'),
                            ('scipy', 'G50')]
    assert all('error' not in r for r in runs.values()), runs
    assert runs[('dataset', 'all')]['protocols'] == ['G100', 'G200', 'G50', 'Occlusion',
                                                     'Resolution']
    assert runs[('fast', 'G50')]['reader'] == 'fast'
    assert runs[('scipy', 'G50')]['reader'] == 'scipy'
    for key in ('gallery_entries', 'positives', 'queries'):
        assert runs[('fast', 'G50')][key] == runs[('scipy', 'G50')][key]
    assert runs[('fast', 'G50')]['gallery_entries'] == 40 * 50
    assert runs[('dataset', 'all')]['peak_rss_gb'] > 0 and 'dataset all' in proc.stdout
