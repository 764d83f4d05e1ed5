# Copyright (c) mmpsearch contributors. All rights reserved.
from .evaluate_before_train_hook import EvaluateBeforeTrainHook

__all__ = ['EvaluateBeforeTrainHook']
