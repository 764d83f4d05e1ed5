# Copyright (c) mmpsearch contributors. All rights reserved.
"""Average precision exactly as ``sklearn.metrics.average_precision_score`` defines it
(oimnetpp.md §6): ``AP = sum_k (R_k - R_{k-1}) P_k`` over the distinct score values in
descending order, every item with score >= s counted at threshold s (ties enter as one
block), recall relative to the number of positives. scikit-learn is not a dependency;
this is the same computation in numpy."""
import numpy as np


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Tie-aware average precision of one ranked list.

    Args:
        y_true (np.ndarray): (N,) 0/1 (or bool) relevance labels.
        y_score (np.ndarray): (N,) scores; higher ranks first.

    Returns:
        float: the AP; 0.0 when there is no positive (the protocol multiplies by a recall
        of 0 then, and scikit-learn would warn and return nan).
    """
    y_true = np.asarray(y_true, np.float64).ravel()
    y_score = np.asarray(y_score, np.float64).ravel()
    if y_true.shape != y_score.shape:
        raise ValueError(f'y_true {y_true.shape} and y_score {y_score.shape} differ')
    if y_true.size == 0 or y_true.sum() == 0:
        return 0.0
    order = np.argsort(-y_score, kind='stable')
    score = y_score[order]
    tps_all = np.cumsum(y_true[order])
    # the last index of each block of equal scores: all of a tie enters at once
    last = np.r_[np.nonzero(np.diff(score))[0], score.size - 1]
    tps = tps_all[last]
    precision = tps / (last + 1.0)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
