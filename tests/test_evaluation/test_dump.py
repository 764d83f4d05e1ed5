# Copyright (c) mmpsearch contributors. All rights reserved.
"""Results dumps: round trip, refusal of anything executable, dataset checks."""
import copy
import os
import pickle

import numpy as np
import pytest
import torch

from mmpsearch.evaluation import (DumpPersonSearchResults, UnsafeDumpError,
                                  check_dump_matches, load_dump, make_dump, write_dump)
from mmpsearch.evaluation.dump import FORMAT, VERSION
from mmpsearch.evaluation.toy_data import random_case
from ._samples import case_samples


@pytest.fixture
def case():
    return random_case(np.random.default_rng(0), 'PRW', num_images=12, num_queries=4)


def test_round_trip(case, tmp_path):
    path = str(tmp_path / 'r.pkl')
    write_dump(path, make_dump(case.records()[::-1], case.search_protocol, 0.05))
    dump = load_dump(path)
    assert dump['format'] == FORMAT and dump['version'] == 1  # OC records: version 1
    assert dump['dataset'] == 'PRW' and dump['score_thr'] == 0.05
    assert check_dump_matches(dump, case.search_protocol, path) == []
    # records come back in protocol image order, with annotations attached
    assert [r['img_id'] for r in dump['records']] == case.search_protocol['image_ids']
    for got, rec in zip(dump['records'], case.records()):
        for k in ('det_bboxes', 'det_embeddings', 'gt_embeddings', 'query_idx'):
            np.testing.assert_array_equal(got[k], rec[k])
    off = case.search_protocol['gt_offsets']
    np.testing.assert_array_equal(dump['records'][1]['gt_bboxes'],
                                  case.search_protocol['gt_bboxes'][off[1]:off[2]])


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_malicious_pickle_is_refused_before_running(tmp_path):
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pkl')
    with open(path, 'wb') as f:
        pickle.dump(dict(format=FORMAT, version=1, records=[_Exploit(marker)]), f)
    with pytest.raises(UnsafeDumpError, match=r'evil\.pkl.*system'):
        load_dump(path)
    assert not marker.exists()


@pytest.mark.parametrize('payload, match', [
    (torch.zeros(3), 'torch'),
    (np.array([1, 'a'], dtype=object), 'object'),
    (np.float64, 'numpy'),  # a class object, not data
])
def test_other_globals_are_refused(tmp_path, payload, match):
    path = str(tmp_path / 'x.pkl')
    with open(path, 'wb') as f:
        pickle.dump(dict(format=FORMAT, version=1, records=[payload]), f)
    with pytest.raises(UnsafeDumpError, match=match):
        load_dump(path)


def test_not_a_dump(tmp_path, case):
    path = str(tmp_path / 'x.pkl')
    with open(path, 'wb') as f:
        pickle.dump([1, 2], f)
    with pytest.raises(ValueError, match='not a person-search results dump'):
        load_dump(path)
    dump = make_dump(case.records(), case.search_protocol)
    dump['version'] = VERSION + 1
    write_dump(path, dump)
    with pytest.raises(ValueError, match='newer|upgrade'):
        load_dump(path)
    with open(path, 'wb') as f:
        f.write(b'\x80\x04garbage')
    with pytest.raises(ValueError, match='not a readable pickle'):
        load_dump(path)


def test_dump_of_another_dataset_is_refused(case):
    dump = make_dump(case.records(), case.search_protocol)
    cuhk = random_case(np.random.default_rng(1), 'CUHK-SYSU').search_protocol
    with pytest.raises(ValueError, match="made on dataset 'PRW'"):
        check_dump_matches(dump, cuhk, 'r.pkl')
    other = random_case(np.random.default_rng(2), 'PRW').search_protocol
    with pytest.raises(ValueError, match='different PRW test split'):
        check_dump_matches(dump, other, 'r.pkl')
    changed = copy.deepcopy(case.search_protocol)
    changed['protocols']['multi_view']['cross_camera'] = False
    assert 'protocol lists changed' in check_dump_matches(dump, changed, 'r.pkl')[0]


def test_dump_metric_writes_the_file(case, tmp_path):
    path = str(tmp_path / 'out.pkl')
    metric = DumpPersonSearchResults(out_file_path=path, score_thr=0.6)
    metric.dataset_meta = dict(search_protocol=case.search_protocol)
    metric.process(None, case_samples(case, as_dict=True))
    assert metric.evaluate(12) == {}
    dump = load_dump(path)
    assert dump['data_fingerprint'] is not None and len(dump['records']) == 12
    assert all((r['det_scores'] >= 0.6).all() for r in dump['records'])
    with pytest.raises(ValueError, match='pkl'):
        DumpPersonSearchResults(out_file_path='x.json')
