# Copyright (c) mmpsearch contributors. All rights reserved.
"""Break a results dump's gallery detections down by error kind.

A person-search ranking suffers from detections that show the query person without
being a correct box of them: duplicates and partial boxes rank next to the correct
box. This tool counts, over the test images of a ``tools/test.py --out`` dump (its
records carry the annotated boxes), the detections with ``score >= --score-thr``,
matched greedily by score to the annotated boxes:

* correct: IoU >= ``--iou`` with a box not matched yet;
* duplicate: IoU >= ``--iou`` with an already matched box;
* partial: 0.1 <= best IoU < ``--iou`` (with the area ratio to that box, the fraction
  of the detection inside it and the score, as medians);
* background: best IoU < 0.1;
* missed: annotated boxes left unmatched.

``--nms-iou`` re-runs class-agnostic NMS at a stricter IoU on every image's detections
first (mmcv's ``nms``) and ``--out`` writes that filtered dump, which
``tools/eval_dump.py`` evaluates like any other: a measure of what the duplicates and
partial boxes cost the search metric (an analysis, not a test-time setting to choose on
the test split).

Example:
    python tools/analysis_tools/detection_errors.py results.pkl
    python tools/analysis_tools/detection_errors.py results.pkl --nms-iou 0.4 --out nms04.pkl
    python tools/eval_dump.py CONFIG nms04.pkl
"""
import argparse
import json
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

import numpy as np  # noqa: E402

from mmpsearch.evaluation import load_dump, write_dump  # noqa: E402
from mmpsearch.evaluation.functional import pairwise_iou  # noqa: E402

PARTIAL_MIN_IOU = 0.1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Gallery detection errors of a dump')
    parser.add_argument('dump', help='results .pkl written by tools/test.py --out')
    parser.add_argument('--score-thr', type=float, default=0.5,
                        help='detections taking part (default 0.5, the search protocols\' '
                        'det_thresh)')
    parser.add_argument('--iou', type=float, default=0.5, help='IoU of a correct box')
    parser.add_argument('--nms-iou', type=float, help='re-run NMS at this IoU first')
    parser.add_argument('--out', help='with --nms-iou: write the filtered dump here')
    parser.add_argument('--json', action='store_true', help='print the counts as JSON')
    args = parser.parse_args(argv)
    if args.out and args.nms_iou is None:
        parser.error('--out writes the dump filtered by --nms-iou, so it needs --nms-iou')
    return args


def stricter_nms(records, iou_thr: float):
    """Records with each image's detections re-suppressed at ``iou_thr`` (in place)."""
    import torch
    from mmcv.ops import nms
    for rec in records:
        boxes = np.asarray(rec['det_bboxes'], np.float32).reshape(-1, 4)
        if len(boxes) < 2:
            continue
        _, keep = nms(torch.from_numpy(boxes),
                      torch.from_numpy(np.asarray(rec['det_scores'], np.float32)), iou_thr)
        keep = np.sort(keep.numpy())
        for key in ('det_bboxes', 'det_scores', 'det_embeddings'):
            if rec.get(key) is not None:
                rec[key] = np.asarray(rec[key])[keep]
    return records


def _area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def detection_errors(records, score_thr: float = 0.5, iou_thr: float = 0.5,
                     source: str = '') -> dict:
    """Count the error kinds (module docstring) over per-image dump records.

    Args:
        records (Sequence[dict]): dump records with ``det_bboxes`` (N, 4), ``det_scores``
            (N,) and ``gt_bboxes`` (M, 4).
        score_thr (float): detections with ``score >= score_thr`` take part.
        iou_thr (float): IoU of a correct box.
        source (str): the dump's path, for error messages.

    Returns:
        dict: ``detections``, ``correct``, ``duplicate``, ``partial``, ``background``,
        ``annotated``, ``missed`` and, over the partial boxes, the medians
        ``partial_area_ratio``, ``partial_inside``, ``partial_score`` (NaN when none).
    """
    counts = dict(detections=0, correct=0, duplicate=0, partial=0, background=0,
                  annotated=0, missed=0)
    area_ratio, inside, part_scores = [], [], []
    for rec in records:
        if rec.get('gt_bboxes') is None:
            raise ValueError(f'{source}: record {rec.get("img_id")!r} has no gt_bboxes; '
                             'dump with a dataset whose test split has annotations')
        scores = np.asarray(rec['det_scores'], np.float64).reshape(-1)
        boxes = np.asarray(rec['det_bboxes'], np.float64).reshape(-1, 4)[scores >= score_thr]
        scores = scores[scores >= score_thr]
        gts = np.asarray(rec['gt_bboxes'], np.float64).reshape(-1, 4)
        counts['detections'] += len(boxes)
        counts['annotated'] += len(gts)
        if len(gts) == 0:
            counts['background'] += len(boxes)
            continue
        ious = pairwise_iou(boxes, gts)
        matched = np.zeros(len(gts), bool)
        for i in np.argsort(-scores, kind='stable'):
            j = int(ious[i].argmax())
            if ious[i, j] >= iou_thr:
                counts['duplicate' if matched[j] else 'correct'] += 1
                matched[j] = True
            elif ious[i, j] >= PARTIAL_MIN_IOU:
                counts['partial'] += 1
                det, gt = boxes[i:i + 1], gts[j:j + 1]
                inter = np.prod(np.clip(np.minimum(det[:, 2:], gt[:, 2:]) -
                                        np.maximum(det[:, :2], gt[:, :2]), 0, None))
                area_ratio.append(_area(det)[0] / max(_area(gt)[0], 1e-12))
                inside.append(inter / max(_area(det)[0], 1e-12))
                part_scores.append(scores[i])
            else:
                counts['background'] += 1
        counts['missed'] += int((~matched).sum())
    for key, values in (('partial_area_ratio', area_ratio), ('partial_inside', inside),
                        ('partial_score', part_scores)):
        counts[key] = float(np.median(values)) if values else float('nan')
    return counts


def main(argv=None) -> dict:
    args = parse_args(argv)
    dump = load_dump(args.dump)
    records = dump['records']
    if dump.get('qc_protocols') or any(r.get('det_query_idx') is not None for r in records):
        # each query has its own detections on an image: counting or suppressing them
        # together would mix the queries' detection sets
        raise SystemExit(f'{args.dump}: a query-centric dump (detections per query); this '
                         'tool reads object-centric dumps (tools/test.py --out with an OC '
                         'config)')
    if args.nms_iou is not None:
        records = stricter_nms(records, args.nms_iou)
        if args.out:
            write_dump(args.out, dump)
    counts = detection_errors(records, args.score_thr, args.iou, args.dump)
    if args.json:
        print(json.dumps(counts, indent=1))
        return counts
    n = max(counts['detections'], 1)
    print(f'{args.dump}: score >= {args.score_thr}, correct at IoU >= {args.iou}' +
          (f', NMS re-run at IoU {args.nms_iou}' if args.nms_iou is not None else ''))
    for key in ('correct', 'duplicate', 'partial', 'background'):
        print(f'  {key:<11} {counts[key]:6d}  ({100 * counts[key] / n:.1f} % of '
              f'{counts["detections"]} detections)')
    print(f'  missed      {counts["missed"]:6d}  (of {counts["annotated"]} annotated boxes)')
    if counts['partial']:
        print(f'  partial boxes (medians): {counts["partial_area_ratio"]:.2f} of the box\'s '
              f'area, {100 * counts["partial_inside"]:.0f} % inside it, score '
              f'{counts["partial_score"]:.2f}')
    if args.out:
        print(f'filtered dump: {args.out}')
    return counts


if __name__ == '__main__':
    main()
