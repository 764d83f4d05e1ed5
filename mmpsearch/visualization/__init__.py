# Copyright (c) mmpsearch contributors. All rights reserved.
from .ranked_results import SearchHit, draw_ranked_results

__all__ = ['SearchHit', 'draw_ranked_results']
