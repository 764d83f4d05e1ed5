# Copyright (c) mmpsearch contributors. All rights reserved.
"""Person-search evaluation: protocols, metric, results dumps (docs/evaluation.md)."""
from .dump import (UnsafeDumpError, check_dump_matches, load_dump, make_dump,
                   write_dump)
from .metrics import DumpPersonSearchResults, PersonSearchMetric
from .protocols import (build_search_galleries, data_fingerprint, protocol_fingerprint,
                        validate_search_protocol)
from .records import assemble_predictions, sample_to_record

__all__ = [
    'PersonSearchMetric', 'DumpPersonSearchResults', 'UnsafeDumpError', 'load_dump',
    'make_dump', 'write_dump', 'check_dump_matches', 'build_search_galleries',
    'protocol_fingerprint', 'data_fingerprint', 'validate_search_protocol',
    'sample_to_record', 'assemble_predictions'
]
