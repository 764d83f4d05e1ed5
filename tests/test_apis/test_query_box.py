# Copyright (c) mmpsearch contributors. All rights reserved.
"""The query-box check says what is wrong with a box (no model needed)."""
import pytest

from mmpsearch.apis.inferencer import _check_query_box


def test_box_inside_and_clipped():
    assert _check_query_box([10, 20, 60, 180], 200, 100) == [10, 20, 60, 180]
    assert _check_query_box([-5, -5, 60, 250], 200, 100) == [0, 0, 60, 200]


@pytest.mark.parametrize('box', [[10, 20, 11, 180], [10, 20, 60, 21.5], [10, 20, 10.5, 20.5]])
def test_tiny_box_is_called_tiny(box):
    with pytest.raises(ValueError, match='smaller than 2 px') as err:
        _check_query_box(box, 200, 100)
    assert 'outside' not in str(err.value)


def test_box_clipped_to_a_sliver_is_called_so():
    # 1 px of it lies inside the 100-px-wide image
    with pytest.raises(ValueError, match=r'only 1(\.0)? x 160(\.0)? px of it lies inside'):
        _check_query_box([99, 20, 160, 180], 200, 100)


@pytest.mark.parametrize('box', [[150, 20, 190, 180], [10, -90, 60, -10], [100, 0, 140, 50]])
def test_box_outside(box):
    with pytest.raises(ValueError, match='lies outside the 100x200 query image'):
        _check_query_box(box, 200, 100)


def test_bad_boxes():
    with pytest.raises(ValueError, match='empty'):
        _check_query_box([50, 50, 40, 90], 200, 100)
    with pytest.raises(ValueError, match='4 finite numbers'):
        _check_query_box([0, 0, float('nan'), 5], 200, 100)
