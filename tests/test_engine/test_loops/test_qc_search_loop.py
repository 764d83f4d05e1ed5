# Copyright (c) mmpsearch contributors. All rights reserved.
"""QC search through the Runner (spnet.md §6.2): the two-pass test loop on a tiny
synthetic PRW set, its pairs, metric keys and the results dump round trip, run as a user
runs it (tools/test.py and tools/eval_dump.py in fresh interpreters)."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmpsearch.engine.loops import QueryAssignment
from mmpsearch.evaluation.toy_data import random_case

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
QC_CFG = osp.join(ROOT, 'configs/spnet/spnet-s-qc_convnext-atto_quickstart_synthetic-prw.py')
# an untrained model scores its anchors below 0.5: keep every candidate so the metric
# has detections to rank
LOOSE = ['model.test_cfg.bbox_head.score_thr=-1.0', 'test_evaluator.det_thresh=0.0',
         'model.test_cfg.bbox_head.max_per_query=3']


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    env.pop('MMPSEARCH_DEFAULT_SCOPE', None)
    return env


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp('qc') / 'synthetic_prw'
    subprocess.run([sys.executable, osp.join(ROOT, 'tools/make_synthetic.py'), '--out',
                    str(root), '--layout', 'prw', '--seed', '0', '--num-train-frames', '8',
                    '--num-test-frames', '6', '--num-train-ids', '4', '--num-test-ids', '3'],
                   check=True, capture_output=True, env=_env())
    ckpt = root.parent / 'random.pth'
    from mmpsearch.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(QC_CFG).model)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), str(ckpt))
    return root, ckpt


def test_query_assignment_follows_the_protocols():
    case = random_case(np.random.default_rng(0), kind='PRW', num_images=12, num_queries=5,
                       num_cams=3)
    sp = case.search_protocol
    plan = QueryAssignment(sp, ['standard'])
    q_img = np.asarray(sp['query_image_idx'])
    for i in range(12):
        assert plan.rows_for(i).tolist() == [q for q in range(5) if q_img[q] != i]
    cams = np.asarray(sp['image_cams'])
    multi = QueryAssignment(sp, ['multi_view'])
    for i in range(12):
        assert multi.rows_for(i).tolist() == [q for q in range(5) if cams[q_img[q]] != cams[i]]
    cuhk = random_case(np.random.default_rng(1), kind='CUHK-SYSU', num_images=30,
                       num_queries=6, gallery_sizes=(5,), dup_prob=0.5)
    sp = cuhk.search_protocol
    plan = QueryAssignment(sp, ['G5'])
    gal = np.asarray(sp['protocols']['G5']['gallery_image_idx'])
    rows = np.asarray(sp['protocols']['G5']['query_idx'])
    for i in range(30):
        assert plan.rows_for(i).tolist() == sorted({int(r) for r, g in zip(rows, gal)
                                                    if i in g.tolist()})
    assert plan.num_pairs() == sum(len(set(g.tolist())) for g in gal)


def _run(args, cwd):
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_qc_test_loop_and_dump_round_trip(tiny_set, tmp_path):
    root, ckpt = tiny_set
    dump = tmp_path / 'qc.pkl'
    opts = [f'test_dataloader.dataset.data_root={root}'] + LOOSE
    log = _run([osp.join(ROOT, 'tools/test.py'), QC_CFG, str(ckpt), '--work-dir',
                str(tmp_path / 'w'), '--out', str(dump), '--cfg-options'] + opts, tmp_path)
    assert 'query-centric person search' in log
    # 3 test ids with queries; every query searches the 5 frames that are not its own
    assert 'pairs searched' in log and 'QC detection' in log
    out_json = tmp_path / 'metrics.json'
    _run([osp.join(ROOT, 'tools/eval_dump.py'), QC_CFG, str(dump), '--out-json',
          str(out_json), '--cfg-options'] + opts, tmp_path)
    metrics = json.loads(out_json.read_text())
    assert 'qc_det/AP' in metrics and 'det/AP' not in metrics
    assert metrics['standard/no_det_queries'] == 0
    # the metrics the test run logged are the ones recomputed from the dump
    line = next(ln for ln in log.splitlines() if ln.strip().startswith('standard '))
    assert f"{100 * metrics['standard/mAP']:6.2f}" in line

    from mmpsearch.evaluation import load_dump
    loaded = load_dump(str(dump))
    assert loaded['version'] == 2 and loaded['qc_protocols'] == ['standard', 'multi_view']
    rec = loaded['records'][0]
    assert rec['det_query_idx'].dtype == np.int64
    assert len(rec['det_query_idx']) == len(rec['det_bboxes'])
    # a QC dump cannot be scored on protocols whose pairs were not searched, nor as OC
    from mmpsearch.evaluation import PersonSearchMetric
    metric = PersonSearchMetric(det_thresh=0.0)
    from mmpsearch.registry import DATASETS
    from mmpsearch.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(QC_CFG)
    cfg.test_dataloader.dataset.data_root = str(root)
    metric.dataset_meta = DATASETS.build(cfg.test_dataloader.dataset).metainfo
    with pytest.raises(ValueError, match='searched protocols are unknown'):
        metric.evaluate_records(loaded['records'])
    metric.qc_searched_protocols = ['multi_view']
    with pytest.raises(ValueError, match=r"protocols \['standard'\]"):
        metric.evaluate_records(loaded['records'])


def test_same_checkpoint_evaluated_object_centric(tiny_set, tmp_path):
    root, ckpt = tiny_set
    oc_cfg = osp.join(ROOT, 'configs/spnet/spnet-s_convnext-atto_quickstart_synthetic-prw.py')
    log = _run([osp.join(ROOT, 'tools/test.py'), oc_cfg, str(ckpt), '--work-dir',
                str(tmp_path / 'w'), '--cfg-options',
                f'test_dataloader.dataset.data_root={root}'], tmp_path)
    assert 'person search (%)' in log and 'query-centric' not in log


def test_two_processes_give_the_single_process_numbers(tiny_set, tmp_path):
    """QC search sharded over 2 gloo processes (the distributed sampler shards the gallery,
    the query embeddings are all-gathered, records collected) equals one process."""
    import socket

    from mmpsearch.evaluation import load_dump
    root, ckpt = tiny_set
    opts = [f'test_dataloader.dataset.data_root={root}'] + LOOSE
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    # the launcher script runs `python`: the interpreter of this test, as an activated venv
    env = dict(_env(), PORT=str(port),
               PATH=osp.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''))
    two = subprocess.run(['bash', osp.join(ROOT, 'tools/dist_test.sh'), QC_CFG, str(ckpt), '2',
                          '--work-dir', str(tmp_path / 'w2'), '--out', str(tmp_path / 'two.pkl'),
                          '--cfg-options'] + opts, cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    _run([osp.join(ROOT, 'tools/test.py'), QC_CFG, str(ckpt), '--work-dir', str(tmp_path / 'w1'),
          '--out', str(tmp_path / 'one.pkl'), '--cfg-options'] + opts, tmp_path)
    one, both = load_dump(str(tmp_path / 'one.pkl')), load_dump(str(tmp_path / 'two.pkl'))
    assert [r['img_id'] for r in one['records']] == [r['img_id'] for r in both['records']]
    for a, b in zip(one['records'], both['records']):
        for key in ('det_bboxes', 'det_scores', 'det_embeddings', 'det_query_idx',
                    'query_idx', 'query_embeddings'):
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{a['img_id']} {key}")
    assert one['qc_protocols'] == both['qc_protocols']
