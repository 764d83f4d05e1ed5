# Copyright (c) mmpsearch contributors. All rights reserved.
"""Load torchvision's ConvNeXt ImageNet weights into :class:`ConvNeXtTrunk`.

The released SPNet starts from torchvision's ``convnext_{tiny,base}`` ``IMAGENET1K_V1``
weights (spnet.md §3.1), which differ from mmpretrain's in1k checkpoints (another training
recipe). This module renames a torchvision state dict to mmpretrain's parameter names so
that the exact released initialisation can be used through ``init_cfg``:

.. code-block:: bash

    python -m mmpsearch.models.backbones.convnext_weights convnext_tiny-983f1562.pth \\
        convnext-tiny_torchvision-in1k.pth

and ``init_cfg=dict(type='Pretrained', checkpoint='convnext-tiny_torchvision-in1k.pth',
prefix='backbone.')``. The ImageNet classifier (``classifier.*``) is dropped.

torchvision layout: ``features.0`` stem (conv, LayerNorm2d); ``features.{2,4,6}``
downsample (LayerNorm2d, conv); ``features.{1,3,5,7}.j`` blocks with ``block.0`` depthwise
conv, ``block.2`` LayerNorm, ``block.3`` / ``block.5`` Linear, ``layer_scale`` (C, 1, 1).
"""
import argparse
import re
from collections import OrderedDict
from typing import Dict

import torch
from torch import Tensor

__all__ = ['torchvision_to_mmpretrain']

_BLOCK = {'0': 'depthwise_conv', '2': 'norm', '3': 'pointwise_conv1', '5': 'pointwise_conv2'}


def torchvision_to_mmpretrain(state_dict: Dict[str, Tensor],
                              prefix: str = 'backbone.') -> 'OrderedDict[str, Tensor]':
    """Rename a torchvision ConvNeXt state dict to mmpretrain ``ConvNeXt`` keys.

    Args:
        state_dict (dict): torchvision ``ConvNeXt.state_dict()``.
        prefix (str): prepended to every key (mmpretrain checkpoints use ``backbone.``).

    Returns:
        OrderedDict: converted tensors; ``layer_scale`` (C, 1, 1) becomes ``gamma`` (C,).

    Raises:
        KeyError: a key that is neither a ConvNeXt feature nor the classifier.
    """
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('classifier.'):
            continue
        m = re.fullmatch(r'features\.(\d+)\.(.+)', key)
        if m is None:
            raise KeyError(f'torchvision_to_mmpretrain: unexpected key {key!r}')
        idx, rest = int(m.group(1)), m.group(2)
        if idx == 0:  # stem: conv, LayerNorm2d
            new = f'downsample_layers.0.{rest}'
        elif idx % 2 == 0:  # downsample: LayerNorm2d, conv
            new = f'downsample_layers.{idx // 2}.{rest}'
        else:
            stage = idx // 2
            b = re.fullmatch(r'(\d+)\.(layer_scale|block\.(\d+)\.(weight|bias))', rest)
            if b is None or (b.group(3) is not None and b.group(3) not in _BLOCK):
                raise KeyError(f'torchvision_to_mmpretrain: unexpected block key {key!r}')
            if b.group(2) == 'layer_scale':
                new, value = f'stages.{stage}.{b.group(1)}.gamma', value.reshape(-1)
            else:
                new = f'stages.{stage}.{b.group(1)}.{_BLOCK[b.group(3)]}.{b.group(4)}'
        out[prefix + new] = value
    return out


def main(argv=None) -> None:
    """CLI: convert a torchvision ConvNeXt checkpoint file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='torchvision checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint for init_cfg Pretrained')
    args = parser.parse_args(argv)
    from mmpsearch.utils import safe_torch_load
    state = safe_torch_load(args.src)
    state = state.get('state_dict', state)
    torch.save(dict(state_dict=torchvision_to_mmpretrain(state)), args.dst)


if __name__ == '__main__':
    main()
