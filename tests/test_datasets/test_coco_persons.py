# Copyright (c) mmpsearch contributors. All rights reserved.
"""COCOPersonsDataset on a hand-made instances file (spnet.md §8.3)."""
import json

import pytest

from mmpsearch.datasets import COCOPersonsDataset


def _coco(tmp_path, anns, images=None):
    images = images or [dict(id=1, file_name='a.jpg', width=100, height=80),
                        dict(id=2, file_name='b.jpg', width=100, height=80),
                        dict(id=3, file_name='c.jpg', width=50, height=50)]
    path = tmp_path / 'instances.json'
    path.write_text(json.dumps(dict(
        images=images, annotations=anns,
        categories=[dict(id=1, name='person'), dict(id=3, name='car')])))
    return str(path)


def _ann(i, img, bbox, cat=1, crowd=0):
    return dict(id=i, image_id=img, bbox=bbox, category_id=cat, iscrowd=crowd)


def test_persons_only_each_box_its_own_identity(tmp_path):
    anns = [_ann(30, 1, [10, 10, 20, 40]), _ann(7, 1, [50, 5, 60, 90]),  # clamped to 100x80
            _ann(8, 1, [0, 0, 10, 10], crowd=1), _ann(9, 2, [5, 5, 10, 10], cat=3),
            _ann(11, 2, [5, 5, 0, 10]), _ann(12, 3, [1, 2, 3, 4])]
    ds = COCOPersonsDataset(ann_file=_coco(tmp_path, anns), data_prefix=dict(img_path='imgs'),
                            data_root=str(tmp_path), serialize_data=False)
    # image 2 has only a car and a degenerate person: dropped
    assert [d['img_id'] for d in ds.data_list] == ['a.jpg', 'c.jpg']
    a = ds.data_list[0]
    assert [i['person_id'] for i in a['instances']] == [7, 30]  # sorted annotation ids
    assert a['instances'][0]['bbox'] == [50.0, 5.0, 100.0, 80.0]
    assert a['instances'][1]['bbox'] == [10.0, 10.0, 30.0, 50.0]
    assert all(i['known'] for d in ds.data_list for i in d['instances'])
    labels = [i['person_label'] for d in ds.data_list for i in d['instances']]
    assert sorted(labels) == [0, 1, 2] and ds.metainfo['num_person_ids'] == 3
    assert ds.load_stats['crowd'] == 1 and ds.load_stats['degenerate'] == 1
    assert a['cam_id'] == -1 and a['img_path'].endswith('imgs/a.jpg')


def test_bad_coco_files(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": [')
    with pytest.raises(ValueError, match='bad.json: not valid JSON'):
        COCOPersonsDataset(ann_file=str(bad))
    path = _coco(tmp_path, [_ann(1, 1, [500, 10, 20, 20])])
    with pytest.raises(ValueError, match='instances.json: box .* of a.jpg lies outside'):
        COCOPersonsDataset(ann_file=path)
    # skipping the only box leaves no image: refused, naming the file (test_empty_split.py)
    with pytest.raises(ValueError, match='instances.json lists no usable image'):
        COCOPersonsDataset(ann_file=path, bad_box='skip')
    with pytest.raises(FileNotFoundError, match='nope.json'):
        COCOPersonsDataset(ann_file=str(tmp_path / 'nope.json'))
