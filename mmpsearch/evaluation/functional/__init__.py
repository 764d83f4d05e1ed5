# Copyright (c) mmpsearch contributors. All rights reserved.
"""Protocol maths on plain arrays (numpy, torch for the GEMM; no mmengine)."""
from .average_precision import average_precision
from .cbgm import CBGMOptions, cbgm_rerank_image, query_context
from .detection import evaluate_detection
from .gallery import DetectionSet, QuerySet, SearchGallery, ranges_to_indices
from .iou import match_threshold, paired_iou, pairwise_iou
from .search import (TIE_ORDERS, TOPK, SearchResult, evaluate_search,
                     evaluate_search_sets)

__all__ = [
    'average_precision', 'CBGMOptions', 'cbgm_rerank_image', 'query_context',
    'evaluate_detection', 'DetectionSet', 'QuerySet', 'SearchGallery', 'ranges_to_indices',
    'match_threshold', 'paired_iou', 'pairwise_iou', 'TIE_ORDERS', 'TOPK', 'SearchResult',
    'evaluate_search', 'evaluate_search_sets'
]
