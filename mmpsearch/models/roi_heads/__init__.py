# Copyright (c) mmpsearch contributors. All rights reserved.
from .oimnet_roi_head import OIMNetRoIHead  # noqa: F401
from .cascade import SwapPathCascade  # noqa: F401
from .reid_roi_head import ReidRoIHead  # noqa: F401
