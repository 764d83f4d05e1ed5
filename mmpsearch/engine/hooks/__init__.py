# Copyright (c) mmpsearch contributors. All rights reserved.
from .evaluate_before_train_hook import EvaluateBeforeTrainHook
from .flush_denormal_hook import FlushDenormalHook
from .non_finite_check_hook import NonFiniteCheckHook, NonFiniteError, non_finite_tensors
from .rng_state_hook import RNGStateHook
from .teacher_ema_hook import TeacherEMAHook

__all__ = ['EvaluateBeforeTrainHook', 'FlushDenormalHook', 'NonFiniteCheckHook',
           'NonFiniteError', 'non_finite_tensors', 'TeacherEMAHook', 'RNGStateHook']
