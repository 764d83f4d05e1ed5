# Copyright (c) mmpsearch contributors. All rights reserved.
"""Calibrating the "not present" answer: a similarity threshold for a target precision.

On a labelled split every query is searched in the split's gallery (its own image left
out) and each of its top-k hits is labelled correct (same identity) or not. Over all
queries this gives a precision/recall curve of the rule "show hits with similarity
``>= t``":

* precision(t) = correct hits ``>= t`` / hits ``>= t``;
* recall(t) = correct hits ``>= t`` / correct hits the top-k could hold (per query
  ``min(k, gallery detections of its identity)``).

The calibrated threshold is the lowest ``t`` whose precision reaches the target (the
largest recall at that precision). Queries whose identity is absent from the gallery add
only wrong hits: they are what the threshold learns to refuse, so a labelled split with
some absent identities (the synthetic and real test splits have them) calibrates the
"not present" answer directly.
"""
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np


@dataclass
class ThresholdCalibration:
    """A calibrated threshold and the curve it was picked from.

    Attributes:
        similarity (float): the threshold.
        target_precision (float): the precision asked for.
        precision (float): precision at the threshold on the labelled split.
        recall (float): recall at the threshold.
        num_queries (int): labelled queries used.
        num_hits (int): labelled hits (query × top-k).
        topk (int): hits per query.
        source (str): what the split was (for the manifest).
        thresholds, precisions, recalls (list[float]): the curve (descending threshold).
    """
    similarity: float
    target_precision: float
    precision: float
    recall: float
    num_queries: int
    num_hits: int
    topk: int
    source: str = ''
    thresholds: List[float] = field(default_factory=list, repr=False)
    precisions: List[float] = field(default_factory=list, repr=False)
    recalls: List[float] = field(default_factory=list, repr=False)

    def to_manifest(self) -> dict:
        """The manifest's ``threshold`` entry (no curve)."""
        d = asdict(self)
        for k in ('thresholds', 'precisions', 'recalls'):
            d.pop(k)
        return d

    def plot(self, path: str) -> None:
        """Draw the precision/recall curve with the chosen point into ``path``."""
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
        ax[0].plot(self.recalls, self.precisions, color='tab:blue')
        ax[0].scatter([self.recall], [self.precision], color='tab:red', zorder=3,
                      label=f't = {self.similarity:.3f}')
        ax[0].set_xlabel('recall')
        ax[0].set_ylabel('precision')
        ax[0].set_ylim(0, 1.02)
        ax[0].set_xlim(0, 1.0)
        ax[0].legend(loc='lower left')
        ax[0].set_title(f'hits in top-{self.topk}, {self.num_queries} queries')
        ax[1].plot(self.thresholds, self.precisions, label='precision')
        ax[1].plot(self.thresholds, self.recalls, label='recall')
        ax[1].axvline(self.similarity, color='tab:red', ls='--')
        ax[1].axhline(self.target_precision, color='grey', ls=':')
        ax[1].set_xlabel('similarity threshold')
        ax[1].legend(loc='lower left')
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def pair_labels(query_feats: np.ndarray, query_ids: Sequence[int],
                query_groups: Sequence, gallery_feats: np.ndarray,
                gallery_ids: Sequence[int], gallery_groups: Sequence,
                topk: int = 10) -> Tuple[np.ndarray, np.ndarray, int]:
    """Top-k hits of each labelled query and whether each is right.

    Args:
        query_feats (np.ndarray): (Q, D) L2-normalised query embeddings.
        query_ids (Sequence[int]): (Q,) identity of each query (>= 0).
        query_groups (Sequence): (Q,) image of each query; the gallery detections of the
            same image are not searched (a query finding itself proves nothing).
        gallery_feats (np.ndarray): (G, D) embeddings of the gallery detections.
        gallery_ids (Sequence[int]): (G,) identity of each detection (-1: unknown or a
            false detection, wrong for every query).
        gallery_groups (Sequence): (G,) image of each detection.
        topk (int): hits per query.

    Returns:
        tuple: (H,) similarities, (H,) bool correctness, and the number of correct hits
        the top-k lists could hold (the recall denominator).
    """
    qf = np.asarray(query_feats, np.float64)
    gf = np.asarray(gallery_feats, np.float64)
    qid, gid = np.asarray(query_ids), np.asarray(gallery_ids)
    qg, gg = np.asarray(query_groups), np.asarray(gallery_groups)
    sims_all, labels_all, positives = [], [], 0
    for q in range(len(qf)):
        ok = gg != qg[q]
        rows = np.nonzero(ok)[0]
        sims = gf[rows] @ qf[q]
        order = np.lexsort((rows, -sims))[:topk]
        sims_all.append(sims[order])
        labels_all.append((gid[rows[order]] == qid[q]) & (qid[q] >= 0))
        positives += min(topk, int(((gid[rows] == qid[q]) & (qid[q] >= 0)).sum()))
    return (np.concatenate(sims_all) if sims_all else np.zeros(0),
            np.concatenate(labels_all) if labels_all else np.zeros(0, bool), positives)


def calibrate_threshold(similarities: np.ndarray, correct: np.ndarray, num_positives: int,
                        target_precision: float = 0.9, num_queries: int = 0,
                        topk: int = 10, source: str = '') -> ThresholdCalibration:
    """The lowest similarity threshold whose precision reaches ``target_precision``.

    Args:
        similarities (np.ndarray): (H,) similarity of each labelled hit.
        correct (np.ndarray): (H,) bool, the hit is the query's identity.
        num_positives (int): recall denominator (see :func:`pair_labels`).
        target_precision (float): in (0, 1].
        num_queries, topk, source: recorded with the result.

    Raises:
        ValueError: no hit is labelled, or no threshold reaches the precision.
    """
    if not 0 < target_precision <= 1:
        raise ValueError(f'target precision must be in (0, 1], got {target_precision}')
    sims = np.asarray(similarities, np.float64)
    good = np.asarray(correct, bool)
    if len(sims) == 0 or not good.any():
        raise ValueError('the labelled split gives no correct hit: nothing to calibrate '
                         '(do its identities appear in more than one image?)')
    order = np.argsort(-sims, kind='stable')
    sims, good = sims[order], good[order]
    last = np.r_[np.nonzero(np.diff(sims))[0], len(sims) - 1]  # end of each tie block
    tp = np.cumsum(good)[last]
    precision = tp / (last + 1)
    recall = tp / max(int(num_positives), 1)
    thresholds = sims[last]
    ok = np.nonzero(precision >= target_precision)[0]
    if len(ok) == 0:
        raise ValueError(f'no threshold reaches precision {target_precision} on this split '
                         f'(best {precision.max():.3f}); ask for a lower target')
    i = ok[-1]
    return ThresholdCalibration(float(thresholds[i]), float(target_precision),
                                float(precision[i]), float(recall[i]), int(num_queries),
                                int(len(sims)), int(topk), source, thresholds.tolist(),
                                precision.tolist(), recall.tolist())
