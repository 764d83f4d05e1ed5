# Copyright (c) mmpsearch contributors. All rights reserved.
"""Results dumps: round trip, refusal of anything executable, dataset checks."""
import copy
import os
import pickle
import re

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


class _HasObjectDtype:
    """A void dtype whose pickled state sets numpy's object flags (hasobject=True)."""

    def __reduce__(self):
        return (np.dtype, ('V8', False, True), (3, '|', None, None, None, 8, 1, 63))


class _ObjectFlaggedArray:
    """An array of that dtype, pickled like any ndarray (``_reconstruct`` + state)."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct
        return (_reconstruct, (np.ndarray, (0, ), b'b'),
                (1, (2, ), _HasObjectDtype(), False, [b'\0' * 8, b'\0' * 8]))


@pytest.mark.parametrize('payload', ['flags', 'structured'])
def test_object_arrays_are_refused_naming_the_key(case, tmp_path, payload):
    """An array whose dtype holds objects is refused, whatever route its dtype took."""
    dump = make_dump(case.records(), case.search_protocol)
    if payload == 'flags':
        dump['records'][3]['det_embeddings'] = _ObjectFlaggedArray()
    else:
        dump['records'][3]['det_embeddings'] = np.zeros(2, dtype=[('x', 'f8'), ('y', 'O')])
    path = str(tmp_path / 'objects.pkl')
    with open(path, 'wb') as f:
        pickle.dump(dump, f, protocol=4)
    with pytest.raises(UnsafeDumpError, match=r'objects\.pkl') as err:
        load_dump(path)
    assert 'records[3].det_embeddings' in str(err.value)  # the key that holds it


@pytest.mark.parametrize('key, bad', [
    ('det_scores', lambda r: r['det_scores'][:-1]),
    ('det_embeddings', lambda r: r['det_embeddings'][:-1]),
    ('det_bboxes', lambda r: r['det_bboxes'][:, :3]),
    ('query_embeddings', lambda r: np.zeros((len(r['query_idx']) + 1,
                                              r['det_embeddings'].shape[1]), np.float32)),
])
def test_row_count_mismatch_names_the_image(case, tmp_path, key, bad):
    records = case.records()
    i = next(i for i, r in enumerate(records) if len(r['det_bboxes']) > 1
             and (key != 'query_embeddings' or len(r['query_idx'])))
    records[i][key] = bad(records[i])
    name = records[i]['img_id']
    path = str(tmp_path / 'rows.pkl')
    write_dump(path, make_dump(records, case.search_protocol))
    with pytest.raises(ValueError, match=rf'rows\.pkl.*{re.escape(name)}.*{key}'):
        load_dump(path)
    # the same check guards predictions that never went through a file
    from mmpsearch.evaluation.records import assemble_predictions
    with pytest.raises(ValueError, match=rf'{re.escape(name)}.*{key}'):
        assemble_predictions(records, case.search_protocol, 'the metric')
