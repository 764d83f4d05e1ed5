# Copyright (c) mmpsearch contributors. All rights reserved.
from .float32_rpn_head import Float32RPNHead
from .qc_pair_sampler import QCPairSampler
from .swap_path_head import SwapPathHead

__all__ = ['SwapPathHead', 'QCPairSampler', 'Float32RPNHead']
