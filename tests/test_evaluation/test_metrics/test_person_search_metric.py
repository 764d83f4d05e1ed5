# Copyright (c) mmpsearch contributors. All rights reserved.
"""PersonSearchMetric: records from data samples (objects or dicts), order and padding
independence, offline evaluation, bad input, output keys."""
import copy

import numpy as np
import pytest
from mmengine.evaluator import Evaluator

from mmpsearch.evaluation import PersonSearchMetric, sample_to_record
from mmpsearch.evaluation.functional.reference import reference_search
from mmpsearch.evaluation.toy_data import random_case
from .._samples import case_samples


def make(kind='PRW', seed=0, **kw):
    return random_case(np.random.default_rng(seed), kind=kind, num_images=30,
                       num_queries=10, **kw)


def run(case, records=None, **kw):
    metric = PersonSearchMetric(**kw)
    metric.dataset_meta = dict(search_protocol=case.search_protocol)
    return metric.compute_metrics(case.records() if records is None else records)


@pytest.mark.parametrize('kind', ['PRW', 'CUHK-SYSU'])
def test_process_objects_and_dicts_agree_with_the_oracle(kind):
    case = make(kind)
    outs = []
    for as_dict in (False, True):
        metric = PersonSearchMetric()
        metric.dataset_meta = dict(search_protocol=case.search_protocol)
        samples = case_samples(case, as_dict)
        for k in range(0, len(samples), 4):
            metric.process(None, samples[k:k + 4])
        assert len(metric.results) == len(samples)  # one record per image
        outs.append(metric.evaluate(len(samples)))
    assert outs[0] == outs[1]
    # the metric's numbers are the means of the oracle's per-query numbers
    rec = [sample_to_record(s) for s in case_samples(case)]
    sp = case.search_protocol
    feats = np.full((len(sp['query_bboxes']), rec[0]['query_embeddings'].shape[1]), np.nan)
    for r in rec:
        feats[r['query_idx']] = r['query_embeddings']
    for name in sp['protocols']:
        ref = reference_search(sp, name, feats, [r['det_bboxes'] for r in rec],
                               [r['det_scores'] for r in rec],
                               [r['det_embeddings'] for r in rec])
        assert outs[0][f'{name}/mAP'] == pytest.approx(ref['ap'].mean(), abs=1e-9)
        assert outs[0][f'{name}/top1'] == pytest.approx(ref['topk'][:, 0].mean(), abs=1e-12)
    main = 'standard' if kind == 'PRW' else 'G10'
    assert outs[0]['mAP'] == outs[0][f'{main}/mAP']


def test_distributed_order_and_padding_do_not_matter():
    case = make()
    rec = case.records()
    base = run(case, rec)
    rng = np.random.default_rng(0)
    shuffled = [rec[i] for i in rng.permutation(len(rec))] + rec[:3]  # padding repeats
    assert run(case, shuffled) == base


def test_offline_evaluate_without_data_batch():
    case = make('CUHK-SYSU')
    evaluator = Evaluator(dict(type='PersonSearchMetric'))
    evaluator.dataset_meta = dict(search_protocol=case.search_protocol)
    out = evaluator.offline_evaluate(case_samples(case, as_dict=True), None, chunk_size=7)
    assert out == run(case)


def test_output_keys_prefix_and_main_protocol():
    case = make()
    out = run(case, main_protocol='multi_view', protocols=['multi_view'])
    assert set(out) == {
        'multi_view/mAP', 'multi_view/top1', 'multi_view/top5', 'multi_view/top10',
        'multi_view/no_det_queries', 'multi_view/no_gt_queries', 'reid_multi_view/mAP',
        'reid_multi_view/top1', 'reid_multi_view/top5', 'reid_multi_view/top10', 'det/AP',
        'det/recall', 'mAP', 'top1'}
    assert out['mAP'] == out['multi_view/mAP']
    metric = PersonSearchMetric(prefix='ps')
    metric.dataset_meta = dict(search_protocol=case.search_protocol)
    metric.results = case.records()
    assert 'ps/standard/mAP' in metric.evaluate(len(metric.results))


def test_missing_image_and_foreign_records():
    case = make()
    rec = case.records()
    with pytest.raises(ValueError, match='missing for 1 of 30'):
        run(case, rec[1:])
    other = make(seed=5)
    other_rec = [dict(r, img_id='x' + r['img_id']) for r in other.records()]
    with pytest.raises(ValueError, match='another dataset'):
        run(case, other_rec)


def test_query_without_gallery_target_modes():
    case = make(orphan_queries=2)
    for mode in ('zero', 'skip'):
        out = run(case, no_gt_query=mode, gt_reid=False, detection=False)
        assert out['standard/no_gt_queries'] == 2
    zero = run(case, no_gt_query='zero', gt_reid=False, detection=False)['standard/mAP']
    skip = run(case, no_gt_query='skip', gt_reid=False, detection=False)['standard/mAP']
    assert skip == pytest.approx(zero * 10 / 8)  # same sum over 8 instead of 10 queries
    with pytest.raises(ValueError, match='count_gt == 0'):
        run(case, no_gt_query='error')


def test_images_without_detections():
    case = make()
    rec = case.records()
    for r in rec:  # no detection anywhere: every query scores 0, nothing crashes
        r['det_bboxes'] = r['det_bboxes'][:0]
        r['det_scores'] = r['det_scores'][:0]
        r['det_embeddings'] = r['det_embeddings'][:0]
    out = run(case, rec)
    assert out['standard/mAP'] == 0 and out['standard/top10'] == 0
    assert out['standard/no_det_queries'] == 10
    assert out['det/recall'] == 0 and out['det/AP'] == 0
    assert out['reid_standard/mAP'] > 0  # the annotated boxes still work


def test_non_finite_values_are_errors():
    case = make()
    rec = copy.deepcopy(case.records())
    i = next(k for k, r in enumerate(rec) if (r['det_scores'] >= 0.5).any())
    j = int(np.nonzero(rec[i]['det_scores'] >= 0.5)[0][0])
    rec[i]['det_embeddings'][j, 0] = np.nan
    with pytest.raises(ValueError, match=f'not finite.*{rec[i]["img_id"]}'):
        run(case, rec)
    # a NaN on a detection under the threshold is never looked at
    rec = copy.deepcopy(case.records())
    rec[0]['det_bboxes'] = np.r_[rec[0]['det_bboxes'], [[0, 0, 5, 5]]].astype(np.float32)
    rec[0]['det_scores'] = np.r_[rec[0]['det_scores'], [0.1]].astype(np.float32)
    rec[0]['det_embeddings'] = np.r_[rec[0]['det_embeddings'],
                                     np.full((1, rec[0]['det_embeddings'].shape[1]), np.nan)
                                     ].astype(np.float32)
    assert run(case, rec, detection=False) == run(case, detection=False)
    # a NaN score is reported even though the score filter of `process` runs first
    samples = case_samples(case)
    next(x for x in samples if len(x.pred_instances)).pred_instances.scores[0] = float('nan')
    metric = PersonSearchMetric()
    metric.dataset_meta = dict(search_protocol=case.search_protocol)
    metric.process(None, samples)
    with pytest.raises(ValueError, match='detection scores are not finite'):
        metric.evaluate(len(samples))
    rec = copy.deepcopy(case.records())
    q = next(r for r in rec if len(r['query_idx']))
    q['query_embeddings'][0, 0] = np.inf
    with pytest.raises(ValueError, match='query embeddings are not finite'):
        run(case, rec)


def test_inconsistent_annotations_and_queries():
    case = make()
    rec = copy.deepcopy(case.records())
    k = next(i for i, r in enumerate(rec) if len(r['gt_embeddings']))
    rec[k]['gt_embeddings'] = rec[k]['gt_embeddings'][1:]
    with pytest.raises(ValueError, match='gt_embeddings has shape'):
        run(case, rec)
    rec = copy.deepcopy(case.records())
    for r in rec:
        r['gt_embeddings'] = None
    out = run(case, rec)
    assert 'reid_standard/mAP' not in out and 'standard/mAP' in out
    rec = copy.deepcopy(case.records())
    r = next(r for r in rec if len(r['query_idx']))
    r['query_idx'] = r['query_idx'][:0]
    r['query_embeddings'] = r['query_embeddings'][:0]
    with pytest.raises(ValueError, match='no embedding for query'):
        run(case, rec)


def test_bad_options_and_missing_protocol():
    with pytest.raises(ValueError, match='tie_order'):
        PersonSearchMetric(tie_order='random')
    metric = PersonSearchMetric()
    metric.dataset_meta = dict(classes=('person', ))
    with pytest.raises(KeyError, match='search_protocol'):
        metric.compute_metrics([])
