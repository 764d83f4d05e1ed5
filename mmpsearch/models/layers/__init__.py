# Copyright (c) mmpsearch contributors. All rights reserved.
from .anchor_generator import SizedAnchorGenerator, octave_sizes
from .ema_teacher import TeacherEMA
from .fixed_norm import BatchNormLogits, FixedNormLogits, chi_moments
from .grouped_nms import grouped_nms
from .imagenet_classifier import ConvNeXtClassifier
from .offset_heads import BoxRegressionMLP, OffsetBridge
from .safe_batchnorm import SafeBatchNorm1d

__all__ = ['SizedAnchorGenerator', 'octave_sizes', 'FixedNormLogits', 'BatchNormLogits',
           'chi_moments', 'grouped_nms', 'OffsetBridge', 'BoxRegressionMLP',
           'SafeBatchNorm1d', 'TeacherEMA', 'ConvNeXtClassifier']
