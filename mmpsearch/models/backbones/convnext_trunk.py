# Copyright (c) mmpsearch contributors. All rights reserved.
"""ConvNeXt trunk of SPNet with a deep-copyable stage 4 (spnet.md §3.1, §3.4).

SPNet feeds the stage-2/3/4 outputs (C3, C4, C5; strides 8/16/32) of a torchvision
ConvNeXt into an FPN, and builds its RoI heads from *deep copies* of the trunk's stage-3->4
downsample layer and stage-4 blocks (``features[6:8]``), initialised from the same ImageNet
weights but not shared with the trunk.

:class:`ConvNeXtTrunk` is mmpretrain's :class:`~mmpretrain.models.ConvNeXt` (same parameter
names, so mmpretrain checkpoints load with ``init_cfg=dict(type='Pretrained',
checkpoint=..., prefix='backbone.')``) with two changes:

* ``out_norm=False`` (default): the stage outputs are returned raw, as torchvision's
  ``features[i]`` are; mmpretrain's per-output LayerNorms are not created.
* :meth:`clone_stage4` returns a :class:`ConvNeXtStage` holding deep copies of
  ``downsample_layers[3]`` and ``stages[3]`` (stochastic depth included, §11.8);
  :meth:`stage4_state_dict` lets the detector re-sync the copies after the trunk's
  pretrained weights are loaded, which is when the released code copies them.
"""
import copy
from typing import Dict, Sequence, Tuple

from mmpretrain.models.backbones.convnext import ConvNeXt
from torch import Tensor, nn

from mmpsearch.registry import MODELS

__all__ = ['ConvNeXtTrunk', 'ConvNeXtStage']


class ConvNeXtStage(nn.Module):
    """A ConvNeXt stage with its input downsample layer (the RoI "conv5" body).

    Args:
        downsample (nn.Module): LayerNorm2d + 2x2 stride-2 conv (C_in -> C_out).
        blocks (nn.Module): the stage's ConvNeXt blocks.
    """

    def __init__(self, downsample: nn.Module, blocks: nn.Module):
        super().__init__()
        self.downsample = downsample
        self.blocks = blocks

    @property
    def out_channels(self) -> int:
        """Output width of the stage (768 for ConvNeXt-T, 1024 for -B)."""
        return self.downsample[-1].out_channels

    @property
    def in_channels(self) -> int:
        """Input width of the stage (384 for ConvNeXt-T, 512 for -B)."""
        return self.downsample[-1].in_channels

    def load_from(self, state: Dict[str, Tensor]) -> None:
        """Copy weights given as ``{'downsample.*': ..., 'blocks.*': ...}`` (strict)."""
        self.load_state_dict(state, strict=True)

    def forward(self, x: Tensor) -> Tensor:
        """(R, C_in, H, W) -> (R, C_out, H/2, W/2)."""
        return self.blocks(self.downsample(x))


@MODELS.register_module()
class ConvNeXtTrunk(ConvNeXt):
    """mmpretrain ConvNeXt returning raw stage outputs, with a copyable stage 4.

    Args:
        arch (str | dict): mmpretrain arch name (``'tiny'``, ``'base'``, ...) or a dict
            with ``depths`` and ``channels`` (used for small test models).
        out_indices (Sequence[int]): stages whose outputs are returned; (1, 2, 3) gives
            C3, C4, C5 as in SPNet.
        out_norm (bool): apply mmpretrain's output LayerNorms. Defaults to False
            (torchvision trunk, released behaviour).
        drop_path_rate (float): stochastic depth; the released torchvision defaults are
            0.1 (tiny) and 0.5 (base).
        layer_scale_init_value (float): layer-scale init; 1e-6 as torchvision.
        **kwargs: forwarded to :class:`mmpretrain.models.ConvNeXt` (``init_cfg``,
            ``frozen_stages``, ``with_cp``, ...).
    """

    def __init__(self,
                 arch='tiny',
                 out_indices: Sequence[int] = (1, 2, 3),
                 out_norm: bool = False,
                 drop_path_rate: float = 0.1,
                 layer_scale_init_value: float = 1e-6,
                 **kwargs):
        out_indices = list(out_indices)
        super().__init__(arch=arch, out_indices=out_indices, drop_path_rate=drop_path_rate,
                         layer_scale_init_value=layer_scale_init_value,
                         gap_before_final_norm=False, **kwargs)
        if self.num_stages != 4:
            raise ValueError(f'ConvNeXtTrunk needs 4 stages, got arch {arch!r}')
        self.out_norm = out_norm
        if not out_norm:
            for i in self.out_indices:
                delattr(self, f'norm{i}')

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Widths of the returned stage outputs, e.g. (192, 384, 768) for tiny."""
        return tuple(self.channels[i] for i in self.out_indices)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Stage outputs for ``out_indices``.

        Args:
            x (Tensor): images (N, 3, H, W), H and W multiples of 32.

        Returns:
            tuple[Tensor]: e.g. C3 (N, 192, H/8, W/8), C4 (N, 384, H/16, W/16),
            C5 (N, 768, H/32, W/32) for ConvNeXt-T.
        """
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(self.downsample_layers[i](x))
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x) if self.out_norm else x)
        return tuple(outs)

    def clone_stage4(self) -> ConvNeXtStage:
        """Deep copy of the stage-3->4 downsample layer and the stage-4 blocks."""
        return ConvNeXtStage(copy.deepcopy(self.downsample_layers[3]),
                             copy.deepcopy(self.stages[3]))

    def stage4_state_dict(self) -> Dict[str, Tensor]:
        """Current stage-4 weights keyed like :class:`ConvNeXtStage`'s state dict."""
        state = {}
        for prefix, module in (('downsample', self.downsample_layers[3]),
                               ('blocks', self.stages[3])):
            for key, value in module.state_dict().items():
                state[f'{prefix}.{key}'] = value
        return state
