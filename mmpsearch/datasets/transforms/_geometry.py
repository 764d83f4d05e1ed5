# Copyright (c) mmpsearch contributors. All rights reserved.
"""Box bookkeeping shared by the person-search transforms.

Every geometric transform goes through these helpers, so the per-box keys stay aligned:
the annotated boxes (``gt_bboxes`` with ``gt_bboxes_labels``, ``gt_ignore_flags``,
``gt_person_ids``, ``gt_person_labels``, ``gt_known``, ``gt_instance_ids`` and mmdet's
``gt_instances_ids``)
and the query boxes (``query_bboxes`` with ``query_person_ids``, ``query_idx``).
"""
from typing import Tuple

import numpy as np
import torch
from mmdet.structures.bbox import BaseBoxes, HorizontalBoxes

GT_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags', 'gt_person_ids',
           'gt_person_labels', 'gt_known', 'gt_instance_ids', 'gt_instances_ids')
QUERY_KEYS = ('query_bboxes', 'query_person_ids', 'query_idx')
BOX_KEYS = {'gt': 'gt_bboxes', 'query': 'query_bboxes'}
GROUP_KEYS = {'gt': GT_KEYS, 'query': QUERY_KEYS}


def get_boxes(results: dict, group: str) -> np.ndarray:
    """(N, 4) float64 numpy copy of the ``group`` ('gt' | 'query') boxes (N = 0 if none)."""
    boxes = results.get(BOX_KEYS[group])
    if boxes is None:
        return np.zeros((0, 4))
    if isinstance(boxes, BaseBoxes):
        boxes = boxes.tensor
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    return np.asarray(boxes, np.float64).reshape(-1, 4)


def set_boxes(results: dict, group: str, boxes: np.ndarray) -> None:
    """Store ``boxes`` back, keeping the key's box type (HorizontalBoxes or ndarray)."""
    key = BOX_KEYS[group]
    if key not in results:
        return
    if isinstance(results[key], BaseBoxes):
        results[key] = HorizontalBoxes(torch.as_tensor(boxes, dtype=torch.float32))
    else:
        results[key] = np.asarray(boxes, np.float32).reshape(-1, 4)


def filter_group(results: dict, group: str, keep: np.ndarray) -> None:
    """Keep the rows ``keep`` (bool (N,)) of every per-box key of ``group``."""
    keep = np.asarray(keep, bool)
    for key in GROUP_KEYS[group]:
        if key not in results:
            continue
        value = results[key]
        if isinstance(value, (BaseBoxes, torch.Tensor)):
            results[key] = value[torch.as_tensor(keep)]
        else:
            results[key] = np.asarray(value)[keep]


def affine_boxes(results: dict, scale: Tuple[float, float], offset: Tuple[float, float]
                 ) -> None:
    """``x' = x * scale + offset`` for the gt and query boxes; updates the homography."""
    for group in BOX_KEYS:
        if BOX_KEYS[group] in results:
            b = get_boxes(results, group)
            b = b * np.array([scale[0], scale[1], scale[0], scale[1]]) + np.array(
                [offset[0], offset[1], offset[0], offset[1]])
            set_boxes(results, group, b)
    mat = np.array([[scale[0], 0, offset[0]], [0, scale[1], offset[1]], [0, 0, 1]],
                   np.float32)
    results['homography_matrix'] = mat @ results.get('homography_matrix',
                                                     np.eye(3, dtype=np.float32))


def crop_boxes(results: dict, window: Tuple[int, int, int, int], min_visibility: float,
               canvas: Tuple[int, int]) -> None:
    """Clip the boxes to ``window`` (x0, y0, x1, y1), drop those that keep less than
    ``min_visibility`` of their area (measured inside the canvas, as albumentations'
    ``min_visibility`` on boxes clamped to the image), and shift to window coordinates.

    Args:
        results (dict): the pipeline dict.
        window (tuple): crop window in current image pixels.
        min_visibility (float): e.g. 0.4 (spnet.md §4.1).
        canvas (tuple): (width, height) of the current image.
    """
    x0, y0, x1, y1 = window
    for group in BOX_KEYS:
        if BOX_KEYS[group] not in results:
            continue
        b = get_boxes(results, group)
        inside = np.clip(b, 0, [canvas[0], canvas[1], canvas[0], canvas[1]])
        area = np.prod(np.clip(inside[:, 2:] - inside[:, :2], 0, None), axis=1)
        cut = np.clip(b, [x0, y0, x0, y0], [x1, y1, x1, y1])
        kept_area = np.prod(np.clip(cut[:, 2:] - cut[:, :2], 0, None), axis=1)
        keep = (area > 0) & (kept_area >= min_visibility * area) & (kept_area > 0)
        set_boxes(results, group, cut - np.array([x0, y0, x0, y0]))
        filter_group(results, group, keep)
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float32)
    results['homography_matrix'] = shift @ results.get('homography_matrix',
                                                       np.eye(3, dtype=np.float32))


def update_scale_factor(results: dict, sx: float, sy: float) -> None:
    """Compose ``scale_factor`` (w, h) with a resize by (sx, sy), as mmdet stores it."""
    old = results.get('scale_factor', (1.0, 1.0))
    results['scale_factor'] = (float(old[0] * sx), float(old[1] * sy))


def check_aligned(results: dict, where: str) -> None:
    """Raise if a per-box key's length differs from its group's box count."""
    for group, keys in GROUP_KEYS.items():
        if BOX_KEYS[group] not in results:
            continue
        n = len(results[BOX_KEYS[group]])
        for key in keys[1:]:
            if key in results and len(results[key]) != n:
                raise ValueError(f'{where}: {key} has {len(results[key])} entries for {n} '
                                 f'{BOX_KEYS[group]} ({results.get("img_path", "?")}); a '
                                 'transform dropped boxes without their ids')
