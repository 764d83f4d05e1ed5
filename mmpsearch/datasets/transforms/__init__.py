# Copyright (c) mmpsearch contributors. All rights reserved.
from .formatting import PackPersonSearchInputs
from .loading import LoadPersonSearchAnnotations, LoadPersonSearchImage
from .person_crop import (CenterPad, PersonSearchRandomFlip, RandomBBoxSafeCrop,
                          RandomFocusedCrop, RandomPersonCrop)
from .resize import RandomScale, WindowResize

__all__ = [
    'LoadPersonSearchImage', 'LoadPersonSearchAnnotations', 'WindowResize', 'RandomScale',
    'CenterPad', 'RandomFocusedCrop', 'RandomBBoxSafeCrop', 'RandomPersonCrop',
    'PersonSearchRandomFlip', 'PackPersonSearchInputs'
]
