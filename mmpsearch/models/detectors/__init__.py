# Copyright (c) mmpsearch contributors. All rights reserved.
from .oimnet import OIMNet  # noqa: F401
from .spnet import SPNet  # noqa: F401
from .spnet_pretrain import SPNetPretrain  # noqa: F401
