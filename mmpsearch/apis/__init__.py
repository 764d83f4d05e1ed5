# Copyright (c) mmpsearch contributors. All rights reserved.
from .inferencer import PersonSearchInferencer

__all__ = ['PersonSearchInferencer']
