# Copyright (c) mmpsearch contributors. All rights reserved.
"""Draw a person-search query and its top-k gallery hits as one picture.

The same drawing serves the search demo (``tools/search_demo.py``), the offline browser
of result dumps (``tools/analysis_tools/browse_results.py``) and the quickstart. Each tile
is drawn with mmengine's :class:`~mmengine.visualization.Visualizer` (boxes and labels);
the tiles are then laid out in one row: the query crop first, then hits by rank.
"""
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence

import cv2
import numpy as np
from mmengine.visualization import Visualizer

__all__ = ['SearchHit', 'draw_ranked_results']

_GREEN, _RED, _BLUE, _GREY = (40, 180, 60), (220, 40, 40), (40, 110, 230), (150, 150, 150)


@dataclass
class SearchHit:
    """One ranked gallery hit.

    Attributes:
        image (np.ndarray): the gallery image, RGB uint8, shape (H, W, 3).
        bbox (Sequence[float]): the hit's box, xyxy in that image's pixels.
        similarity (float): cosine similarity to the query.
        score (float): detector score of the box.
        name (str): a short image name shown under the tile.
        correct (bool | None): whether the hit is the query person (None: unknown).
    """
    image: np.ndarray
    bbox: Sequence[float]
    similarity: float
    score: float
    name: str = ''
    correct: Optional[bool] = None


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    width = max(1, int(round(w * height / max(h, 1))))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _crop_context(image: np.ndarray, bbox: Sequence[float], context: float) -> tuple:
    """Crop around a box with some context; returns the crop and the box inside it."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = [float(v) for v in bbox]
    bw, bh = x2 - x1, y2 - y1
    cx1 = int(max(0, np.floor(x1 - context * bw)))
    cy1 = int(max(0, np.floor(y1 - context * bh)))
    cx2 = int(min(w, np.ceil(x2 + context * bw)))
    cy2 = int(min(h, np.ceil(y2 + context * bh)))
    if cx2 <= cx1 or cy2 <= cy1:
        raise ValueError(f'box {list(bbox)} lies outside the {w}x{h} image')
    return image[cy1:cy2, cx1:cx2], np.array([x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1])


def _tile(image, bbox, color, caption_lines, height, context, vis):
    crop, box = _crop_context(image, bbox, context)
    scale = height / crop.shape[0]
    tile = _fit(crop, height)
    vis.set_image(tile)
    vis.draw_bboxes(box[None] * scale, edge_colors=[color], line_widths=3)
    tile = vis.get_image()
    caption = np.full((18 * len(caption_lines) + 6, max(tile.shape[1], 120), 3), 255, np.uint8)
    for i, (text, text_color) in enumerate(caption_lines):
        cv2.putText(caption, text, (4, 16 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    text_color, 1, cv2.LINE_AA)
    if caption.shape[1] > tile.shape[1]:
        pad = np.full((tile.shape[0], caption.shape[1] - tile.shape[1], 3), 255, np.uint8)
        tile = np.concatenate([tile, pad], axis=1)
    frame = np.concatenate([tile, caption], axis=0)
    border = np.full((frame.shape[0] + 8, frame.shape[1] + 8, 3), color, np.uint8)
    border[4:-4, 4:-4] = frame
    return border


def draw_ranked_results(query_image: np.ndarray,
                        query_bbox: Sequence[float],
                        hits: List[SearchHit],
                        out_file: Optional[str] = None,
                        tile_height: int = 256,
                        context: float = 0.25,
                        title: str = '') -> np.ndarray:
    """Compose the query and its ranked hits into one RGB picture.

    Args:
        query_image (np.ndarray): RGB uint8 (H, W, 3) image holding the query.
        query_bbox (Sequence[float]): query box, xyxy pixels.
        hits (list[SearchHit]): gallery hits, best first.
        out_file (str, optional): where to write the picture (PNG/JPEG by extension).
        tile_height (int): height of every tile in pixels.
        context (float): context kept around each box, as a fraction of its size.
        title (str): a line written above the row.

    Returns:
        np.ndarray: the picture, RGB uint8.
    """
    vis = Visualizer.get_instance('mmpsearch_ranked_results')
    tiles = [_tile(query_image, query_bbox, _BLUE, [('query', _BLUE), ('', _GREY)],
                   tile_height, context, vis)]
    for rank, hit in enumerate(hits, 1):
        color = _GREY if hit.correct is None else (_GREEN if hit.correct else _RED)
        mark = '' if hit.correct is None else (' ok' if hit.correct else ' x')
        lines = [(f'#{rank} sim {hit.similarity:.3f}{mark}', color),
                 (f'det {hit.score:.2f} {hit.name[:14]}', (60, 60, 60))]
        tiles.append(_tile(hit.image, hit.bbox, color, lines, tile_height, context, vis))
    height = max(t.shape[0] for t in tiles)
    gap = np.full((height, 8, 3), 255, np.uint8)
    row = []
    for t in tiles:
        pad = np.full((height - t.shape[0], t.shape[1], 3), 255, np.uint8)
        row += [np.concatenate([t, pad], axis=0), gap]
    canvas = np.concatenate(row[:-1], axis=1)
    if title:
        band = np.full((28, canvas.shape[1], 3), 255, np.uint8)
        cv2.putText(band, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1,
                    cv2.LINE_AA)
        canvas = np.concatenate([band, canvas], axis=0)
    if out_file is not None:
        os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
        if not cv2.imwrite(out_file, canvas[..., ::-1]):
            raise IOError(f'could not write {out_file}')
    return canvas
