# Copyright (c) mmpsearch contributors. All rights reserved.
from .pretrain_transfer import (SPNetPretrainedInit, TransferReport, convert_pretrained_state,
                                pretrain_path_of)

__all__ = ['SPNetPretrainedInit', 'TransferReport', 'convert_pretrained_state',
           'pretrain_path_of']
