# Copyright (c) mmpsearch contributors. All rights reserved.
"""Pipeline dicts with tagged boxes: each box's person id is unique, so alignment of
boxes and ids can be checked after any transform."""
import numpy as np
import torch
from mmdet.structures.bbox import HorizontalBoxes


def make_results(w=400, h=300, boxes=None, known=None, queries=None, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    if boxes is None:
        boxes = [[20, 30, 80, 200], [150, 40, 210, 260], [300, 100, 380, 290],
                 [5, 5, 30, 60]]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    results = dict(img=img, img_shape=(h, w), ori_shape=(h, w), img_path='fake.jpg',
                   img_id='fake.jpg', cam_id=3,
                   gt_bboxes=HorizontalBoxes(torch.as_tensor(boxes)),
                   gt_bboxes_labels=np.zeros(n, np.int64),
                   gt_ignore_flags=np.zeros(n, bool),
                   gt_person_ids=np.arange(100, 100 + n, dtype=np.int64),
                   gt_person_labels=np.arange(n, dtype=np.int64),
                   gt_known=np.ones(n, bool) if known is None else np.asarray(known, bool))
    if queries is not None:
        q = np.asarray(queries, np.float32).reshape(-1, 4)
        results.update(query_bboxes=HorizontalBoxes(torch.as_tensor(q)),
                       query_person_ids=np.arange(500, 500 + len(q), dtype=np.int64),
                       query_idx=np.arange(len(q), dtype=np.int64))
    return results


def boxes_of(results, key='gt_bboxes'):
    b = results[key]
    return (b.tensor.numpy() if hasattr(b, 'tensor') else np.asarray(b)).astype(np.float64)


def apply_homography(mat, boxes):
    """Map xyxy boxes with a 3x3 (axis-aligned) homography."""
    pts = np.concatenate([boxes[:, :2], boxes[:, 2:]], axis=0)
    pts = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ np.asarray(mat).T
    pts = pts[:, :2] / pts[:, 2:]
    n = len(boxes)
    out = np.concatenate([pts[:n], pts[n:]], axis=1)
    return np.concatenate([np.minimum(out[:, :2], out[:, 2:]),
                           np.maximum(out[:, :2], out[:, 2:])], axis=1)
