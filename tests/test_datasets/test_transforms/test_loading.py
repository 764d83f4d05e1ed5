# Copyright (c) mmpsearch contributors. All rights reserved.
"""Loading: clear errors for missing/corrupt/mis-sized images; the person-search keys."""
import cv2
import numpy as np
import pytest

from mmpsearch.datasets.transforms import (LoadPersonSearchAnnotations,
                                           LoadPersonSearchImage)


def _item(path, w=64, h=48, queries=True):
    item = dict(img_path=str(path), img_id='x.jpg', height=h, width=w, cam_id=2,
                instances=[dict(bbox=[1, 2, 30, 40], bbox_label=0, ignore_flag=0,
                                person_id=7, person_label=3, known=True),
                           dict(bbox=[10, 5, 50, 45], bbox_label=0, ignore_flag=0,
                                person_id=-1, person_label=-1, known=False)])
    if queries:
        item['queries'] = [dict(bbox=[1, 2, 30, 40], person_id=7, query_idx=12)]
    return item


def test_load_image_errors(tmp_path):
    good = tmp_path / 'good.png'
    cv2.imwrite(str(good), np.full((48, 64, 3), 128, np.uint8))
    out = LoadPersonSearchImage()(_item(good))
    assert out['img'].shape == (48, 64, 3) and out['ori_shape'] == (48, 64)
    with pytest.raises(ValueError, match='good.png: the image is 64x48 but its annotation '
                                         'says 60x48'):
        LoadPersonSearchImage()(_item(good, w=60))
    assert LoadPersonSearchImage(check_size=False)(_item(good, w=60))['img'].shape[1] == 64
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        LoadPersonSearchImage()(_item(tmp_path / 'missing.jpg'))
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    with pytest.raises(OSError, match='cannot decode image file .*bad.jpg'):
        LoadPersonSearchImage()(_item(bad))


def test_load_annotations():
    out = LoadPersonSearchAnnotations()(_item('x.jpg'))
    assert out['gt_bboxes'].tensor.tolist() == [[1, 2, 30, 40], [10, 5, 50, 45]]
    assert out['gt_person_ids'].tolist() == [7, -1] and out['gt_person_ids'].dtype == np.int64
    assert out['gt_person_labels'].tolist() == [3, -1]
    assert out['gt_known'].tolist() == [True, False] and out['gt_known'].dtype == bool
    assert out['gt_bboxes_labels'].tolist() == [0, 0]
    assert out['query_bboxes'].tensor.tolist() == [[1, 2, 30, 40]]
    assert out['query_person_ids'].tolist() == [7] and out['query_idx'].tolist() == [12]
    train = LoadPersonSearchAnnotations()(_item('x.jpg', queries=False))
    assert 'query_bboxes' not in train
    off = LoadPersonSearchAnnotations(with_query=False)(_item('x.jpg'))
    assert 'query_bboxes' not in off
    empty = LoadPersonSearchAnnotations()(dict(_item('x.jpg'), instances=[], queries=[]))
    assert empty['gt_bboxes'].shape == (0, 4) and empty['query_bboxes'].shape == (0, 4)


def test_known_must_follow_the_label_map():
    """A labelled identity without a lookup-table row (PRW's 483/932 under OIMNet++'s map)
    would reach the OIM loss as a labelled sample: refused here, naming the image."""
    item = _item('frames/c1s1_000151.jpg', queries=False)
    item['instances'][0].update(person_id=483, person_label=-1, known=True)
    with pytest.raises(ValueError, match=r'c1s1_000151.jpg: instance 0 has known=True but '
                                         r'person_label=-1'):
        LoadPersonSearchAnnotations()(item)
    del item['instances'][0]['known']  # without the flag, it follows the label
    assert LoadPersonSearchAnnotations()(item)['gt_known'].tolist() == [False, False]


def test_load_annotations_instance_ids():
    """Each box's key within its image: its position, or the dataset's instance_id."""
    out = LoadPersonSearchAnnotations()(_item('x.jpg'))
    assert out['gt_instance_ids'].tolist() == [0, 1]
    assert out['gt_instance_ids'].dtype == np.int64
    item = _item('x.jpg')
    item['instances'] = [dict(i, instance_id=40 + k) for k, i in enumerate(item['instances'])]
    assert LoadPersonSearchAnnotations()(item)['gt_instance_ids'].tolist() == [40, 41]
