# Copyright (c) mmpsearch contributors. All rights reserved.
"""Box overlap as the person-search protocol defines it (oimnetpp.md §6, "Common
definitions"): continuous xyxy boxes, no ``+1``, and the size-dependent match threshold
``min(0.5, wh / ((w + 10)(h + 10)))`` of the target box."""
import numpy as np


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of row-aligned box pairs.

    Args:
        a (np.ndarray): (N, 4) xyxy boxes.
        b (np.ndarray): (N, 4) xyxy boxes.

    Returns:
        np.ndarray: (N,) float64 IoU of ``a[i]`` and ``b[i]``; 0 where the union is 0
        (two degenerate boxes), where the official code would divide by zero.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.maximum(iw, 0.) * np.maximum(ih, 0.)
    union = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) +
             (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)
    out = np.zeros(len(a))
    np.divide(inter, union, out=out, where=union > 0)
    return out


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` with every box of ``b``.

    Args:
        a (np.ndarray): (N, 4) xyxy boxes.
        b (np.ndarray): (M, 4) xyxy boxes.

    Returns:
        np.ndarray: (N, M) float64 IoU matrix.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    n, m = len(a), len(b)
    return paired_iou(np.repeat(a, m, axis=0), np.tile(b, (n, 1))).reshape(n, m)


def match_threshold(boxes: np.ndarray) -> np.ndarray:
    """Search IoU threshold of each target box, ``min(0.5, wh / ((w+10)(h+10)))``.

    The protocol applies it to the target box in original image pixels, so small (far)
    persons need less overlap than 0.5 (oimnetpp.md §6; spnet.md §7.3 step 5).

    Args:
        boxes (np.ndarray): (N, 4) xyxy target boxes.

    Returns:
        np.ndarray: (N,) float64 thresholds.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.minimum(0.5, w * h / ((w + 10.) * (h + 10.)))
