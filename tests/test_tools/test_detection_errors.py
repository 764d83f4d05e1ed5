# Copyright (c) mmpsearch contributors. All rights reserved.
"""tools/analysis_tools/detection_errors.py on a hand-made dump whose answer is known, run
in a subprocess as a user runs it; ``--nms-iou --out`` writes a dump that loads and
evaluates."""
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest

from mmpsearch.evaluation import load_dump, make_dump, write_dump
from mmpsearch.evaluation.dump import FORMAT
from mmpsearch.evaluation.toy_data import hand_case

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'detection_errors.py')
PERSON = [10, 10, 50, 130]  # 40 x 120
OTHER = [200, 10, 240, 130]


def _case():
    images = [
        dict(name='a.jpg', gts=[(PERSON, 1), (OTHER, 2)],
             dets=[(PERSON, 0.9, 0.5),                 # correct
                   ([11, 11, 51, 131], 0.8, 0.5),      # duplicate (IoU 0.95)
                   ([10, 10, 50, 60], 0.7, 0.5),       # partial: upper 5/12 of the person
                   ([300, 300, 340, 400], 0.6, 0.5),   # background
                   ([200, 10, 240, 130], 0.4, 0.5)]),  # below the score threshold
        dict(name='b.jpg', gts=[(PERSON, 3)], dets=[]),  # missed
        dict(name='c.jpg', gts=[], dets=[(PERSON, 0.95, 0.5)]),  # background (no person)
    ]
    queries = [dict(image='a.jpg', box=PERSON, pid=1)]
    return hand_case(images, queries, dict(std=dict(kind='all_but_query',
                                                    cross_camera=False)), dataset='PRW')


@pytest.fixture
def dump_path(tmp_path):
    case = _case()
    path = str(tmp_path / 'results.pkl')
    write_dump(path, make_dump(case.records(), case.search_protocol))
    return path


def _run(*args):
    proc = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_counts_each_error_kind(dump_path):
    counts = json.loads(_run(dump_path, '--json'))
    assert {k: counts[k] for k in ('detections', 'correct', 'duplicate', 'partial',
                                   'background', 'annotated', 'missed')} == dict(
        detections=5, correct=1, duplicate=1, partial=1, background=2, annotated=3,
        missed=2)  # OTHER (score 0.4 < 0.5) and b.jpg's person
    assert counts['partial_area_ratio'] == pytest.approx(50 / 120)
    assert counts['partial_inside'] == pytest.approx(1.0)
    assert counts['partial_score'] == pytest.approx(0.7)


def test_score_threshold_and_text_output(dump_path):
    counts = json.loads(_run(dump_path, '--json', '--score-thr', '0.3'))
    assert counts['correct'] == 2 and counts['missed'] == 1
    text = _run(dump_path)
    assert 'duplicate' in text and '(of 3 annotated boxes)' in text


def test_stricter_nms_writes_a_dump_that_evaluates(dump_path, tmp_path):
    out = str(tmp_path / 'nms.pkl')
    text = _run(dump_path, '--nms-iou', '0.45', '--out', out)
    assert 'NMS re-run at IoU 0.45' in text
    dump = load_dump(out)
    rec = {r['img_id']: r for r in dump['records']}['a.jpg']
    # the duplicate (IoU 0.95 with the correct box) is gone; the partial box (IoU 5/12)
    # and the rest stay
    assert len(rec['det_bboxes']) == 4 and len(rec['det_embeddings']) == 4
    assert not np.any(np.all(np.isclose(rec['det_bboxes'], [11, 11, 51, 131]), axis=1))
    counts = json.loads(_run(out, '--json'))
    assert counts['duplicate'] == 0 and counts['correct'] == 1 and counts['partial'] == 1


def test_out_needs_nms(dump_path, tmp_path):
    proc = subprocess.run([sys.executable, TOOL, dump_path, '--out', str(tmp_path / 'x.pkl')],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2 and 'needs --nms-iou' in proc.stderr


def test_query_centric_dump_is_refused(tmp_path):
    case = _case()
    records = case.records()
    for rec in records:
        rec['det_query_idx'] = np.zeros(len(rec['det_scores']), np.int64)
    path = str(tmp_path / 'qc.pkl')
    write_dump(path, make_dump(records, case.search_protocol, qc_protocols=['std']))
    proc = subprocess.run([sys.executable, TOOL, path], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 1 and 'query-centric dump' in proc.stderr


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_hostile_dump_is_refused_without_running_code(tmp_path):
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pkl')
    with open(path, 'wb') as f:
        pickle.dump(dict(format=FORMAT, version=1, records=[_Exploit(marker)]), f)
    proc = subprocess.run([sys.executable, TOOL, path, '--nms-iou', '0.4', '--out',
                           str(tmp_path / 'out.pkl')], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode != 0 and 'UnsafeDumpError' in proc.stderr
    assert not marker.exists() and not (tmp_path / 'out.pkl').exists()
