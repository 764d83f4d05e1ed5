# Copyright (c) mmpsearch contributors. All rights reserved.
from . import transforms  # noqa: F401  (registers the transforms)
from .base_person_search import BasePersonSearchDataset
from .coco_persons import COCOPersonsDataset
from .cuhk_sysu import CUHKSYSUDataset
from .protocol import build_search_protocol, check_search_protocol
from .prw import PRWDataset
from .samplers import RepeatSampler, ViewIndex

__all__ = [
    'BasePersonSearchDataset', 'CUHKSYSUDataset', 'PRWDataset', 'COCOPersonsDataset',
    'RepeatSampler', 'ViewIndex', 'build_search_protocol', 'check_search_protocol'
]
