# Copyright (c) mmpsearch contributors. All rights reserved.
"""Resizes of the SPNet recipes (spnet.md §4.2): ``wrs`` and the random scale of
``rrc_scale``. Boxes (annotated and query) move with the image."""
from typing import Optional, Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from mmpsearch.registry import TRANSFORMS
from ._geometry import affine_boxes, update_scale_factor

SCALE_RANGES = {'released': (1.5, 3.0), 'paper': (0.5, 2.0)}


def _resize(results: dict, new_w: int, new_h: int, interpolation: str) -> None:
    img = results['img']
    h, w = img.shape[:2]
    results['img'] = mmcv.imresize(img, (new_w, new_h), interpolation=interpolation)
    sx, sy = new_w / w, new_h / h
    affine_boxes(results, (sx, sy), (0.0, 0.0))
    update_scale_factor(results, sx, sy)
    results['img_shape'] = (new_h, new_w)
    results['keep_ratio'] = True


@TRANSFORMS.register_module()
class WindowResize(BaseTransform):
    """``wrs``: aspect-preserving resize so the short side is ``short_side``, unless the
    long side would then exceed ``long_side``, in which case the long side is
    ``long_side`` (a 1920×1080 PRW frame → 1500×844). Linear interpolation.

    Args:
        short_side (int): target short side (SPNet: 900).
        long_side (int): cap of the long side (SPNet: 1500).
        interpolation (str): mmcv interpolation name.
    """

    def __init__(self, short_side: int = 900, long_side: int = 1500,
                 interpolation: str = 'bilinear'):
        self.short_side, self.long_side = short_side, long_side
        self.interpolation = interpolation

    def target_size(self, w: int, h: int) -> Tuple[int, int]:
        """(new_w, new_h) for a w×h image."""
        scale = min(self.short_side / min(w, h), self.long_side / max(w, h))
        return int(w * scale + 0.5), int(h * scale + 0.5)

    def transform(self, results: dict) -> dict:
        h, w = results['img'].shape[:2]
        _resize(results, *self.target_size(w, h), self.interpolation)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(short_side={self.short_side}, '
                f'long_side={self.long_side}, interpolation={self.interpolation})')


@TRANSFORMS.register_module()
class RandomScale(BaseTransform):
    """Step 1 of ``rrc_scale``: resize by a factor drawn uniformly from a range.

    The released code calls albumentations' ``RandomScale(scale_limit=(0.5, 2.0))``,
    which adds 1 to the limits (albumentations 1.3.1), so it draws from U(1.5, 3.0); the
    paper's supplement says 0.5–2× (spnet.md §4.2, §11.1). New size = ``int(side × s)``
    (albumentations truncates).

    Args:
        scale_mode (str): ``'released'`` (default, U(1.5, 3.0)) or ``'paper'``
            (U(0.5, 2.0)).
        scale_range (tuple[float, float], optional): an explicit range (overrides
            ``scale_mode``).
        interpolation (str): mmcv interpolation name.
    """

    def __init__(self, scale_mode: str = 'released',
                 scale_range: Optional[Tuple[float, float]] = None,
                 interpolation: str = 'bilinear'):
        if scale_range is None:
            if scale_mode not in SCALE_RANGES:
                raise ValueError(f'scale_mode must be one of {tuple(SCALE_RANGES)}, got '
                                 f'{scale_mode!r}')
            scale_range = SCALE_RANGES[scale_mode]
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f'invalid scale_range {scale_range}')
        self.scale_mode, self.scale_range = scale_mode, tuple(scale_range)
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        s = np.random.uniform(*self.scale_range)
        h, w = results['img'].shape[:2]
        _resize(results, max(1, int(w * s)), max(1, int(h * s)), self.interpolation)
        results['random_scale'] = float(s)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(scale_mode={self.scale_mode}, '
                f'scale_range={self.scale_range})')
