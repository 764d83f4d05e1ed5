# Copyright (c) mmpsearch contributors. All rights reserved.
from .lwf import LwFLoss
from .oim import LOIMLoss, OIMLoss
from .prototype_queue import PrototypeQueueLoss

__all__ = ['OIMLoss', 'LOIMLoss', 'PrototypeQueueLoss', 'LwFLoss']
