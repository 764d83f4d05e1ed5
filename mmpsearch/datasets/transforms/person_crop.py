# Copyright (c) mmpsearch contributors. All rights reserved.
"""Crops of SPNet's ``rrc2`` / ``rrc_scale`` recipes (spnet.md §4.2) and the flip.

``rrc2`` = :class:`WindowResize` → :class:`CenterPad` (3·crop) → :class:`RandomPersonCrop`
(50/50 :class:`RandomFocusedCrop` / :class:`RandomBBoxSafeCrop`, each resized to
crop × crop) → :class:`PersonSearchRandomFlip` (0.5). ``rrc_scale`` replaces the first
step by :class:`RandomScale` and pads to 4·crop. A box that keeps less than 40% of its
area in a crop is dropped together with its ids (albumentations ``min_visibility``).
"""
import math
from typing import Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import RandomFlip

from mmpsearch.registry import TRANSFORMS
from ._geometry import (BOX_KEYS, affine_boxes, crop_boxes, get_boxes, set_boxes,
                        update_scale_factor)


@TRANSFORMS.register_module()
class CenterPad(BaseTransform):
    """Pad to at least ``size`` × ``size``, image centred (albumentations
    ``PadIfNeeded``; top/left get the floor of half the padding), constant border.

    Args:
        size (int): minimum output side (SPNet: 3·crop for rrc2, 4·crop for rrc_scale).
        pad_val (int | tuple): border value in raw pixel values. 0 (black) is the value
            the released code intends (it passes ``-mean/std`` in normalised space);
            its uint8 round trip actually pads with the image's global minimum (§11.12).
    """

    def __init__(self, size: int, pad_val=0):
        self.size, self.pad_val = int(size), pad_val

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        # boxes are clamped to the image first (SPNet clamps them at preparation): the
        # border is not image, a crop must not keep a box's part that lies there
        for group in ('gt', 'query'):
            if BOX_KEYS[group] in results:
                set_boxes(results, group, np.clip(get_boxes(results, group), 0, [w, h, w, h]))
        ph, pw = max(0, self.size - h), max(0, self.size - w)
        top, left = ph // 2, pw // 2
        if ph or pw:
            results['img'] = mmcv.impad(img, padding=(left, top, pw - left, ph - top),
                                        pad_val=self.pad_val)
            affine_boxes(results, (1.0, 1.0), (left, top))
            results['img_shape'] = results['img'].shape[:2]
        results['pad_offset'] = (left, top)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size}, pad_val={self.pad_val})'


class _CropResize(BaseTransform):
    """Crop a window, resize it to ``crop_size`` × ``crop_size``, keep boxes aligned."""

    def __init__(self, crop_size: int = 512, min_visibility: float = 0.4,
                 interpolation: str = 'bilinear'):
        self.crop_size = int(crop_size)
        self.min_visibility = min_visibility
        self.interpolation = interpolation

    def _apply(self, results: dict, window: Tuple[int, int, int, int]) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        x0, y0, x1, y1 = window
        crop_boxes(results, window, self.min_visibility, (w, h))
        patch = img[y0:y1, x0:x1]
        results['img'] = mmcv.imresize(patch, (self.crop_size, self.crop_size),
                                       interpolation=self.interpolation)
        sx, sy = self.crop_size / (x1 - x0), self.crop_size / (y1 - y0)
        affine_boxes(results, (sx, sy), (0.0, 0.0))
        update_scale_factor(results, sx, sy)
        results['img_shape'] = (self.crop_size, self.crop_size)
        results['crop_window'] = tuple(int(v) for v in window)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(crop_size={self.crop_size}, '
                f'min_visibility={self.min_visibility})')


@TRANSFORMS.register_module()
class RandomFocusedCrop(_CropResize):
    """SPNet's ``RandomFocusedCrop2``: a square window of side
    ``max(crop, box_w, box_h)`` that fully contains a random *known* box (a random box if
    no box is known; a random window if there is none), clipped to the image, resized to
    ``crop_size`` × ``crop_size``.
    """

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        boxes = np.clip(get_boxes(results, 'gt'), 0, [w, h, w, h])
        known = np.asarray(results.get('gt_known', np.zeros(len(boxes), bool)), bool)
        pool = np.nonzero(known)[0] if known.any() else np.arange(len(boxes))
        if pool.size:
            bx1, by1, bx2, by2 = boxes[np.random.choice(pool)]
            side = int(math.ceil(max(self.crop_size, bx2 - bx1, by2 - by1)))
            x0 = _position(bx1, bx2, side, w)
            y0 = _position(by1, by2, side, h)
        else:
            side = self.crop_size
            x0 = np.random.randint(0, max(w - side, 0) + 1)
            y0 = np.random.randint(0, max(h - side, 0) + 1)
        window = (x0, y0, min(w, x0 + side), min(h, y0 + side))
        return self._apply(results, window)


def _position(b1: float, b2: float, side: int, size: int) -> int:
    """A random start in [b2 - side, b1] (window contains [b1, b2]) within [0, size-side]."""
    lo = max(0, int(math.ceil(b2)) - side)
    hi = min(int(math.floor(b1)), size - side)
    if hi < lo:  # the box cannot be fully contained (window wider than the image, or
        return int(np.clip(lo, 0, max(size - side, 0)))  # box larger than the window)
    return int(np.random.randint(lo, hi + 1))


@TRANSFORMS.register_module()
class RandomBBoxSafeCrop(_CropResize):
    """albumentations ``RandomSizedBBoxSafeCrop(crop, crop, erosion_rate)``: the union of
    all boxes, each shrunk by ``erosion_rate`` of its size on every side, is extended
    toward each image border by a uniform random fraction of the remaining margin; the
    window is resized to ``crop_size`` × ``crop_size`` without keeping the aspect ratio.

    Args:
        erosion_rate (float): SPNet: 0.1.
        **kwargs: :class:`_CropResize` arguments.
    """

    def __init__(self, erosion_rate: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.erosion_rate = erosion_rate

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        boxes = np.clip(get_boxes(results, 'gt'), 0, [w, h, w, h])
        if len(boxes) == 0:  # albumentations: a random window of ≥ (1 - erosion) height
            ch = np.random.randint(int(h * (1 - self.erosion_rate)), h + 1)
            cw = max(1, min(w, int(ch * w / h)))
            x0 = np.random.randint(0, w - cw + 1)
            y0 = np.random.randint(0, h - ch + 1)
            return self._apply(results, (x0, y0, x0 + cw, y0 + ch))
        e = self.erosion_rate * np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
        eroded = boxes + e * np.array([1, 1, -1, -1])
        ux1, uy1 = eroded[:, 0].min(), eroded[:, 1].min()
        ux2, uy2 = eroded[:, 2].max(), eroded[:, 3].max()
        x0 = int(ux1 * np.random.rand())
        y0 = int(uy1 * np.random.rand())
        x1 = int(math.ceil(ux2 + (w - ux2) * np.random.rand()))
        y1 = int(math.ceil(uy2 + (h - uy2) * np.random.rand()))
        x1, y1 = min(max(x1, x0 + 1), w), min(max(y1, y0 + 1), h)
        return self._apply(results, (x0, y0, x1, y1))

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', erosion_rate={self.erosion_rate})'


@TRANSFORMS.register_module()
class RandomPersonCrop(BaseTransform):
    """The ``OneOf`` of rrc2/rrc_scale: :class:`RandomFocusedCrop` with probability
    ``focused_prob`` (SPNet: 0.5), else :class:`RandomBBoxSafeCrop`.

    Args:
        crop_size (int): output side (SPNet-S/T: 512, SPNet-L: 1024).
        focused_prob (float): probability of the focused crop.
        erosion_rate (float): of the box-safe crop.
        min_visibility (float): boxes keeping less of their area are dropped.
        interpolation (str): mmcv interpolation name.
    """

    def __init__(self, crop_size: int = 512, focused_prob: float = 0.5,
                 erosion_rate: float = 0.1, min_visibility: float = 0.4,
                 interpolation: str = 'bilinear'):
        self.focused_prob = focused_prob
        self.focused = RandomFocusedCrop(crop_size, min_visibility, interpolation)
        self.safe = RandomBBoxSafeCrop(erosion_rate, crop_size=crop_size,
                                       min_visibility=min_visibility,
                                       interpolation=interpolation)

    def transform(self, results: dict) -> dict:
        if np.random.rand() < self.focused_prob:
            results['crop_mode'] = 'focused'
            return self.focused(results)
        results['crop_mode'] = 'bbox_safe'
        return self.safe(results)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(crop_size={self.focused.crop_size}, '
                f'focused_prob={self.focused_prob}, erosion_rate={self.safe.erosion_rate}, '
                f'min_visibility={self.focused.min_visibility})')


@TRANSFORMS.register_module()
class PersonSearchRandomFlip(RandomFlip):
    """mmdet's ``RandomFlip`` that also flips the query boxes (ids never move, since a
    flip reorders nothing). Defaults to a horizontal flip with probability 0.5."""

    def __init__(self, prob: float = 0.5, direction: str = 'horizontal', **kwargs):
        super().__init__(prob=prob, direction=direction, **kwargs)

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        if results.get('query_bboxes') is not None:
            h, w = results['img'].shape[:2]
            q = get_boxes(results, 'query')
            d = results['flip_direction']
            if d in ('horizontal', 'diagonal'):
                q[:, [0, 2]] = w - q[:, [2, 0]]
            if d in ('vertical', 'diagonal'):
                q[:, [1, 3]] = h - q[:, [3, 1]]
            set_boxes(results, 'query', q)
