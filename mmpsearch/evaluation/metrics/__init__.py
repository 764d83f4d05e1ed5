# Copyright (c) mmpsearch contributors. All rights reserved.
from .dump_person_search_results import DumpPersonSearchResults
from .person_search_metric import PersonSearchMetric

__all__ = ['PersonSearchMetric', 'DumpPersonSearchResults']
