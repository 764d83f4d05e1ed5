# Copyright (c) mmpsearch contributors. All rights reserved.
"""The ConvNeXt ImageNet classifier on the trunk's C5, for the LwF loss (spnet.md §3.10,
§4.7).

torchvision's ConvNeXt classifies with ``avgpool(C5) -> LayerNorm2d -> Linear(C5, 1000)``;
mmpretrain's ConvNeXt has the same two layers as ``backbone.norm3`` (with
``gap_before_final_norm``) and ``head.fc``. :class:`ConvNeXtClassifier` holds them, and
loads them from the *same* ImageNet checkpoint as the trunk (either layout), because
:class:`ConvNeXtTrunk` drops its final norm and has no head.
"""
from typing import Dict, Optional

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.runner import CheckpointLoader
from torch import Tensor, nn

from mmpsearch.registry import MODELS

__all__ = ['ConvNeXtClassifier']

# (norm weight, norm bias, fc weight, fc bias) keys per checkpoint layout
_LAYOUTS = {
    'mmpretrain': ('backbone.norm3.weight', 'backbone.norm3.bias', 'head.fc.weight',
                   'head.fc.bias'),
    'torchvision': ('classifier.0.weight', 'classifier.0.bias', 'classifier.2.weight',
                    'classifier.2.bias'),
}


@MODELS.register_module()
class ConvNeXtClassifier(BaseModule):
    """Global average pool, LayerNorm and the linear ImageNet classifier.

    Args:
        in_channels (int): C5 width (768 for ConvNeXt-T, 1024 for -B).
        num_classes (int): 1000 for ImageNet-1k.
        checkpoint (str, optional): the trunk's ImageNet checkpoint (mmpretrain or
            torchvision layout); loaded by :meth:`init_weights`. None keeps PyTorch's init
            (tests, random-init runs).
    """

    def __init__(self, in_channels: int, num_classes: int = 1000,
                 checkpoint: Optional[str] = None):
        super().__init__()
        self.norm = nn.LayerNorm(in_channels, eps=1e-6)
        self.fc = nn.Linear(in_channels, num_classes)
        self.checkpoint = checkpoint

    def init_weights(self) -> None:
        """Load the norm and the classifier from ``checkpoint``."""
        super().init_weights()
        if self.checkpoint is None:
            return
        ckpt = CheckpointLoader.load_checkpoint(self.checkpoint, map_location='cpu')
        self.load_classifier(ckpt.get('state_dict', ckpt), self.checkpoint)
        print_log(f'ConvNeXtClassifier: loaded the ImageNet classifier from '
                  f'{self.checkpoint}', logger='current')

    @torch.no_grad()
    def load_classifier(self, state: Dict[str, Tensor], source: str = 'state dict') -> None:
        """Copy the classifier from an mmpretrain or torchvision ConvNeXt state dict.

        Raises:
            KeyError: neither layout's classifier keys are in ``state`` (e.g. a trunk-only
                checkpoint converted without its classifier).
        """
        for layout, keys in _LAYOUTS.items():
            if all(k in state for k in keys):
                nw, nb, fw, fb = (state[k] for k in keys)
                for name, dst, src in (('norm.weight', self.norm.weight, nw),
                                       ('norm.bias', self.norm.bias, nb),
                                       ('fc.weight', self.fc.weight, fw),
                                       ('fc.bias', self.fc.bias, fb)):
                    if dst.shape != src.shape:
                        raise ValueError(f'ConvNeXtClassifier: {source} ({layout}) has '
                                         f'{name} of shape {tuple(src.shape)}, expected '
                                         f'{tuple(dst.shape)}')
                    dst.copy_(src)
                return
        raise KeyError(f'ConvNeXtClassifier: {source} has no ConvNeXt ImageNet classifier '
                       f'(looked for {_LAYOUTS["mmpretrain"]} or {_LAYOUTS["torchvision"]})')

    def forward(self, c5: Tensor) -> Tensor:
        """(N, C5, H, W) trunk output -> (N, num_classes) logits."""
        return self.fc(self.norm(c5.mean(dim=(2, 3))))
