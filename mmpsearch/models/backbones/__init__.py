# Copyright (c) mmpsearch contributors. All rights reserved.
from .convnext_trunk import ConvNeXtStage, ConvNeXtTrunk
from .convnext_weights import torchvision_to_mmpretrain

__all__ = ['ConvNeXtTrunk', 'ConvNeXtStage', 'torchvision_to_mmpretrain']
