# Copyright (c) mmpsearch contributors. All rights reserved.
"""Dense anchors of SPNet (spnet.md §3.2): mmdet's :class:`AnchorGenerator` with an explicit
size list per level and the torchvision conventions of the released code.

The released model uses torchvision's ``AnchorGenerator`` with 3 integer sizes per level,
``int(b * 2**(k/3))`` for ``b = 32 .. 512`` and ``k = 0, 1, 2`` (P4 gets 101, not 2 * 50),
and aspect ratios (h/w) 0.5, 1, 2. mmdet's generator shares one scale list across levels,
so this subclass takes ``sizes`` per level and reproduces torchvision's two details:

* base anchors are rounded to integers and centred at 0 (``center_offset=0``);
* ``strides_from_image=True``: the stride of a level is ``padded_image_size //
  featmap_size`` per axis, as torchvision computes it. It equals the nominal stride for
  P3-P5 (inputs are padded to a multiple of 32) and differs for P6/P7 when the padded size
  is not a multiple of 128 (e.g. 864 // 14 = 61 on a 1504 x 864 PRW test frame).

The anchor order is location-major, anchor-minor (ratio-major, size-minor within a
location), matching the embedding head's reshape.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.models.task_modules.prior_generators import AnchorGenerator
from torch import Tensor

from mmpsearch.registry import TASK_UTILS

__all__ = ['SizedAnchorGenerator', 'octave_sizes']


def octave_sizes(base_sizes: Sequence[int] = (32, 64, 128, 256, 512),
                 scales_per_octave: int = 3) -> List[List[int]]:
    """Per-level anchor sizes ``int(b * 2**(k / n))`` as the released config builds them.

    Args:
        base_sizes (Sequence[int]): the first size of each level.
        scales_per_octave (int): sizes per level (n).

    Returns:
        list[list[int]]: e.g. ``[[32, 40, 50], [64, 80, 101], ...]``.
    """
    return [[int(b * 2**(k / scales_per_octave)) for k in range(scales_per_octave)]
            for b in base_sizes]


@TASK_UTILS.register_module()
class SizedAnchorGenerator(AnchorGenerator):
    """Anchor generator with explicit per-level sizes (torchvision semantics).

    Args:
        strides (list[int]): nominal stride per level.
        sizes (list[list[float]]): anchor sizes (sqrt of area) per level.
        ratios (list[float]): aspect ratios h / w.
        round_base (bool): round base anchors to integers, as torchvision does.
            Defaults to True.
        strides_from_image (bool): derive strides from the padded image size when
            ``pad_shape`` is given to :meth:`grid_priors`. Defaults to True.
    """

    def __init__(self,
                 strides: Sequence[int],
                 sizes: Sequence[Sequence[float]],
                 ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 round_base: bool = True,
                 strides_from_image: bool = True):
        if len(sizes) != len(strides):
            raise ValueError(f'SizedAnchorGenerator: {len(sizes)} size lists for '
                             f'{len(strides)} strides')
        if len({len(s) for s in sizes}) != 1:
            raise ValueError(f'SizedAnchorGenerator: every level needs the same number of '
                             f'sizes, got {sizes}')
        self.sizes = [list(map(float, s)) for s in sizes]
        self.round_base = round_base
        self.strides_from_image = strides_from_image
        # scales=[1] only satisfies the parent's checks; gen_base_anchors uses ``sizes``.
        super().__init__(strides=list(strides), ratios=list(ratios), scales=[1.0],
                         base_sizes=[s[0] for s in self.sizes], center_offset=0.)

    def gen_base_anchors(self) -> List[Tensor]:
        """Base anchors per level, shape (len(ratios) * len(sizes), 4), centred at 0."""
        anchors = []
        for sizes in self.sizes:
            scales = torch.tensor(sizes)
            base = self.gen_single_level_base_anchors(1.0, scales=scales, ratios=self.ratios)
            anchors.append(base.round() if self.round_base else base)
        return anchors

    def level_strides(self, featmap_sizes: Sequence[Tuple[int, int]],
                      pad_shape: Optional[Tuple[int, int]] = None) -> List[Tuple[int, int]]:
        """(stride_w, stride_h) per level, from the padded image when configured."""
        if pad_shape is None or not self.strides_from_image:
            return list(self.strides)
        pad_h, pad_w = pad_shape[:2]
        return [(pad_w // w, pad_h // h) for h, w in featmap_sizes]

    def grid_priors(self,
                    featmap_sizes: List[Tuple[int, int]],
                    dtype: torch.dtype = torch.float32,
                    device='cpu',
                    pad_shape: Optional[Tuple[int, int]] = None) -> List[Tensor]:
        """Anchors of every level.

        Args:
            featmap_sizes (list[tuple[int, int]]): (h, w) per level.
            dtype (torch.dtype): anchor dtype.
            device: anchor device.
            pad_shape (tuple[int, int], optional): padded batch input (h, w); with
                ``strides_from_image`` the strides follow torchvision.

        Returns:
            list[Tensor]: (h * w * A, 4) anchors per level, xyxy.
        """
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(f'SizedAnchorGenerator has {self.num_levels} levels, got '
                             f'{len(featmap_sizes)} feature maps')
        saved = self.strides
        self.strides = self.level_strides(featmap_sizes, pad_shape)
        try:
            return [self.single_level_grid_priors(featmap_sizes[i], level_idx=i,
                                                  dtype=dtype, device=device)
                    for i in range(self.num_levels)]
        finally:
            self.strides = saved

    def num_anchors(self, pad_shape: Tuple[int, int]) -> int:
        """Anchor count for a padded input with FPN levels of stride 8 .. 128.

        Each level halves the previous size with ceil (stride-2 convs with padding 1).
        """
        h, w = pad_shape
        total = 0
        for i, (sw, _) in enumerate(self.strides):
            if i == 0:
                h, w = math.ceil(h / sw), math.ceil(w / sw)
            else:
                h, w = math.ceil(h / 2), math.ceil(w / 2)
            total += h * w * self.num_base_priors[i]
        return total
