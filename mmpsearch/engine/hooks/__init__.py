# Copyright (c) mmpsearch contributors. All rights reserved.
from .evaluate_before_train_hook import EvaluateBeforeTrainHook
from .flush_denormal_hook import FlushDenormalHook

__all__ = ['EvaluateBeforeTrainHook', 'FlushDenormalHook']
