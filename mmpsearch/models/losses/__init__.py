# Copyright (c) mmpsearch contributors. All rights reserved.
from .oim import LOIMLoss, OIMLoss

__all__ = ['OIMLoss', 'LOIMLoss']
