# Copyright (c) mmpsearch contributors. All rights reserved.
"""search_protocol assembly and validation (docs/data_contract.md §3)."""
import numpy as np
import pytest

from mmpsearch.datasets.protocol import (all_but_query_protocol, build_search_protocol,
                                         check_search_protocol, listed_protocol,
                                         protocol_gallery)


def _data_list():
    ins = lambda b, p: dict(bbox=b, person_id=p)  # noqa: E731
    return [dict(img_id='a.jpg', cam_id=1, instances=[ins([0, 0, 10, 20], 5)]),
            dict(img_id='b.jpg', cam_id=2, instances=[]),
            dict(img_id='c.jpg', cam_id=1, instances=[ins([1, 1, 5, 9], -1),
                                                      ins([2, 2, 8, 8], 5)])]


def test_build_and_galleries():
    queries = [dict(image_idx=0, bbox=[0, 0, 10, 20], person_id=5)]
    protos = dict(standard=all_but_query_protocol(np.arange(1), False),
                  multi_view=all_but_query_protocol(np.arange(1), True),
                  G3=listed_protocol([0], [[2, 1, 0]], [0, 0], [0, 2], [[2, 2, 8, 8],
                                                                          [0, 0, 10, 20]]))
    sp = build_search_protocol('PRW', _data_list(), queries, protos)
    assert sp['gt_offsets'].tolist() == [0, 1, 1, 3]
    assert sp['gt_bboxes'].dtype == np.float64 and sp['gt_bboxes'].shape == (3, 4)
    assert sp['gt_person_ids'].tolist() == [5, -1, 5]
    assert sp['image_ids'] == ['a.jpg', 'b.jpg', 'c.jpg']
    assert protocol_gallery(sp, 'standard', 0) == [1, 2]
    assert protocol_gallery(sp, 'multi_view', 0) == [1]  # camera 1 images removed
    assert protocol_gallery(sp, 'G3', 0) == [2, 1, 0]  # listed: the own image kept


def test_check_rejects_broken_protocols():
    queries = [dict(image_idx=0, bbox=[0, 0, 10, 20], person_id=5)]
    sp = build_search_protocol('CUHK-SYSU', _data_list(), queries, {})
    bad = dict(sp, gt_offsets=np.array([0, 1, 1], np.int64))
    with pytest.raises(ValueError, match='gt_offsets'):
        check_search_protocol(bad)
    bad = dict(sp, protocols=dict(G=listed_protocol([0], [[0, 7]], [], [], [])))
    with pytest.raises(ValueError, match='G.gallery_image_idx range'):
        check_search_protocol(bad)
    bad = dict(sp, protocols=dict(G=dict(kind='random', query_idx=np.zeros(0, np.int64))))
    with pytest.raises(ValueError, match='unknown kind'):
        check_search_protocol(bad)
    bad = dict(sp, query_image_idx=np.array([3], np.int64))
    with pytest.raises(ValueError, match='query_image_idx range'):
        check_search_protocol(bad)
