# Copyright (c) mmpsearch contributors. All rights reserved.
from .qc_search_loop import QCTestLoop, QCValLoop, QueryAssignment

__all__ = ['QCTestLoop', 'QCValLoop', 'QueryAssignment']
