# Copyright (c) mmpsearch contributors. All rights reserved.
"""How well a config's anchors cover the annotated people of its data set (no model run).

For every annotated box of a split, resized as the config's ``WindowResize`` resizes its
frame and laid on the padded input, it finds the best IoU with any anchor of the config's
anchor generator and counts the anchors the stage-0 assigner would make positive
(IoU >= ``pos_iou_thr``). A box whose best IoU stays under that threshold is learned only
through the assigner's low-quality match, from one anchor. Reported overall and by box
shape (h/w) and height.

Example:
    python tools/analysis_tools/anchor_coverage.py \
        configs/spnet/spnet-s_convnext-atto_quickstart_synthetic-prw.py --split train
    python tools/analysis_tools/anchor_coverage.py CONFIG --cfg-options \
        'model.bbox_head.anchor_generator.ratios=[0.5,1.0,2.0]'
"""
import argparse
import math
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_REPO, 'mmpsearch', '__init__.py')):
    sys.path.insert(0, _REPO)

import mmpsearch  # noqa: E402,F401
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmdet.structures.bbox import bbox_overlaps  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

from mmpsearch.registry import DATASETS, TASK_UTILS  # noqa: E402
from mmpsearch.utils import register_all_modules  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Anchor coverage of annotated boxes')
    parser.add_argument('config')
    parser.add_argument('--split', choices=['train', 'test'], default='train')
    parser.add_argument('--data-root', help='the data set (default: the config\'s)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def _window_resize(pipeline):
    for t in pipeline:
        if t['type'] == 'WindowResize':
            return t.get('short_side', 900), t.get('long_side', 1500)
    raise ValueError('the split\'s pipeline has no WindowResize: the input scale is unknown')


def _feature_sizes(pad_shape, strides):
    """(h, w) of each FPN level: the first by its stride, then halved with ceil (the
    stride-2 extra convs), as :meth:`SizedAnchorGenerator.num_anchors` counts them."""
    h, w = pad_shape
    sizes = []
    for i, (sw, sh) in enumerate(strides):
        h, w = (math.ceil(h / sh), math.ceil(w / sw)) if i == 0 else (math.ceil(h / 2),
                                                                        math.ceil(w / 2))
        sizes.append((h, w))
    return sizes


def coverage(boxes_per_frame, sizes_per_frame, anchor_generator: dict, resize,
             pad_divisor: int, pos_iou_thr: float) -> dict:
    """Best anchor IoU and positive-anchor count of every box.

    Args:
        boxes_per_frame (list[np.ndarray]): (n_i, 4) xyxy boxes in frame pixels.
        sizes_per_frame (list[tuple]): (w, h) of each frame.
        anchor_generator (dict): :class:`SizedAnchorGenerator` config.
        resize (tuple): WindowResize (short_side, long_side).
        pad_divisor (int): the data preprocessor's ``pad_size_divisor``.
        pos_iou_thr (float): the assigner's positive threshold.

    Returns:
        dict: ``best_iou`` (N,), ``num_pos`` (N,), ``height`` (N,; input pixels),
        ``aspect`` (N,; h/w).
    """
    gen = TASK_UTILS.build(anchor_generator)
    short, long_ = resize
    best, npos, heights, aspects = [], [], [], []
    cache = {}
    for boxes, (w, h) in zip(boxes_per_frame, sizes_per_frame):
        if len(boxes) == 0:
            continue
        scale = min(short / min(w, h), long_ / max(w, h))
        iw, ih = int(w * scale + 0.5), int(h * scale + 0.5)
        pad = (math.ceil(ih / pad_divisor) * pad_divisor,
               math.ceil(iw / pad_divisor) * pad_divisor)
        if pad not in cache:
            feat_sizes = _feature_sizes(pad, gen.strides)
            cache[pad] = torch.cat(gen.grid_priors(feat_sizes, pad_shape=pad))
        anchors = cache[pad]
        gt = torch.as_tensor(boxes, dtype=torch.float32) * scale
        iou = bbox_overlaps(gt, anchors)
        best.append(iou.max(dim=1).values.numpy())
        npos.append((iou >= pos_iou_thr).sum(dim=1).numpy())
        bh, bw = (gt[:, 3] - gt[:, 1]).numpy(), (gt[:, 2] - gt[:, 0]).numpy()
        heights.append(bh)
        aspects.append(bh / np.maximum(bw, 1e-6))
    return dict(best_iou=np.concatenate(best), num_pos=np.concatenate(npos),
                height=np.concatenate(heights), aspect=np.concatenate(aspects))


def report(res: dict, pos_iou_thr: float) -> str:
    """Table of uncovered shares overall, by h/w and by height."""
    lines = [f'{"boxes":>22} {"n":>6} {"best IoU < thr":>15} {"positives/box":>14}']

    def row(name, m):
        if m.sum() == 0:
            return
        lines.append(f'{name:>22} {int(m.sum()):6d} '
                     f'{100 * (res["best_iou"][m] < pos_iou_thr).mean():14.1f}% '
                     f'{res["num_pos"][m].mean():14.1f}')

    row('all', np.ones_like(res['best_iou'], dtype=bool))
    a, h = res['aspect'], res['height']
    for lo, hi in [(0, 2.5), (2.5, 4), (4, np.inf)]:
        row(f'h/w {lo:g}-{hi:g}', (a >= lo) & (a < hi))
    for lo, hi in [(0, 64), (64, 128), (128, np.inf)]:
        row(f'height {lo:g}-{hi:g} px', (h >= lo) & (h < hi))
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    loader = cfg.train_dataloader if args.split == 'train' else cfg.test_dataloader
    ds_cfg = loader.dataset
    while 'dataset' in ds_cfg:
        ds_cfg = ds_cfg.dataset
    if args.data_root:
        ds_cfg.data_root = args.data_root
    resize = _window_resize(ds_cfg.pipeline)
    dataset = DATASETS.build(ds_cfg)
    boxes, sizes = [], []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        boxes.append(np.array([ins['bbox'] for ins in info['instances']],
                              dtype=np.float32).reshape(-1, 4))
        sizes.append((info['width'], info['height']))
    head = cfg.model.bbox_head
    thr = cfg.model.train_cfg.bbox_head.assigner.pos_iou_thr
    pad = cfg.model.data_preprocessor.get('pad_size_divisor', 1)
    res = coverage(boxes, sizes, head.anchor_generator, resize, pad, thr)
    gen = head.anchor_generator
    print(f'{args.split} split, WindowResize{resize}, anchors sizes={gen.get("sizes")} '
          f'ratios={gen.get("ratios")}, positive IoU >= {thr}')
    print(report(res, thr))
    return res


if __name__ == '__main__':
    main()
