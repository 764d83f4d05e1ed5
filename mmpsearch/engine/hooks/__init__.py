# Copyright (c) mmpsearch contributors. All rights reserved.
from .evaluate_before_train_hook import EvaluateBeforeTrainHook
from .flush_denormal_hook import FlushDenormalHook
from .non_finite_check_hook import NonFiniteCheckHook, NonFiniteError, non_finite_tensors

__all__ = ['EvaluateBeforeTrainHook', 'FlushDenormalHook', 'NonFiniteCheckHook',
           'NonFiniteError', 'non_finite_tensors']
