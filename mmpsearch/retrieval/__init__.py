# Copyright (c) mmpsearch contributors. All rights reserved.
"""A persistent gallery index: detect and embed once, search in milliseconds
(docs/search_your_footage.md). Plain Python over numpy; FAISS is optional."""
from .calibration import ThresholdCalibration, calibrate_threshold, pair_labels
from .gallery_index import BACKENDS, GalleryIndex, Hit, QueryResult
from .manifest import (GalleryIndexError, IndexCorruptError, IndexMismatchError,
                       load_manifest)

__all__ = [
    'GalleryIndex', 'Hit', 'QueryResult', 'BACKENDS', 'GalleryIndexError',
    'IndexCorruptError', 'IndexMismatchError', 'load_manifest', 'ThresholdCalibration',
    'calibrate_threshold', 'pair_labels'
]
