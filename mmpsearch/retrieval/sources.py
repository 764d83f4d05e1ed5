# Copyright (c) mmpsearch contributors. All rights reserved.
"""Gallery inputs: image files, folders and videos, listed as frames to index.

A video is decoded with OpenCV at a frame step (every ``frame_step``-th frame, or one
frame every ``seconds`` seconds); each frame is one unit of work of a build and carries
its time from the start of the video (frame / fps). Missing files, videos OpenCV cannot
open and frames it cannot decode are errors that name the file (and the frame).
"""
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence

import cv2
import numpy as np

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
VIDEO_EXTS = ('.mp4', '.avi', '.mkv', '.mov', '.m4v', '.webm', '.mpg', '.mpeg', '.ts')


@dataclass(frozen=True)
class FrameRef:
    """One frame to index: ``source`` (a file path), ``frame`` index, ``time`` (s)."""
    source: str
    frame: int
    time: float
    is_video: bool


def _video_info(path: str):
    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise OSError(f'cannot open video {path} (not a video OpenCV can decode)')
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 0.0
    finally:
        cap.release()
    if n <= 0:
        raise OSError(f'video {path} reports no frames')
    return n, fps if fps > 0 else 25.0


def expand_gallery(items: Sequence[str]) -> List[str]:
    """Files to index: folders expand to their images and videos (sorted, not
    recursive); files are kept. Raises FileNotFoundError naming a missing path."""
    out: List[str] = []
    for item in items:
        if osp.isdir(item):
            files = sorted(osp.join(item, f) for f in os.listdir(item)
                           if f.lower().endswith(IMAGE_EXTS + VIDEO_EXTS))
            if not files:
                raise ValueError(f'gallery folder {item} holds no image or video '
                                 f'({", ".join(IMAGE_EXTS + VIDEO_EXTS)})')
            out.extend(files)
        elif osp.isfile(item):
            out.append(item)
        else:
            raise FileNotFoundError(f'gallery input not found: {item}')
    return out


def list_frames(files: Sequence[str], frame_step: int = 1,
                seconds: Optional[float] = None) -> List[FrameRef]:
    """Every frame to index, in input order.

    Args:
        files (Sequence[str]): images and videos (:func:`expand_gallery`).
        frame_step (int): index every ``frame_step``-th video frame.
        seconds (float, optional): instead, one frame every ``seconds`` seconds.
    """
    if frame_step < 1:
        raise ValueError(f'frame_step must be >= 1, got {frame_step}')
    frames: List[FrameRef] = []
    for path in files:
        if path.lower().endswith(VIDEO_EXTS):
            n, fps = _video_info(path)
            step = max(1, int(round(seconds * fps))) if seconds else frame_step
            frames.extend(FrameRef(path, f, f / fps, True) for f in range(0, n, step))
        elif path.lower().endswith(IMAGE_EXTS):
            frames.append(FrameRef(path, 0, 0.0, False))
        else:
            raise ValueError(f'{path}: not an image ({", ".join(IMAGE_EXTS)}) or a video '
                             f'({", ".join(VIDEO_EXTS)})')
    return frames


class FrameReader:
    """Reads frames (BGR uint8), keeping one open video and decoding forward from it."""

    def __init__(self):
        self._path: Optional[str] = None
        self._cap = None
        self._pos = 0

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap, self._path = None, None

    def read(self, ref: FrameRef) -> np.ndarray:
        if not ref.is_video:
            if not osp.isfile(ref.source):
                raise FileNotFoundError(f'image file not found: {ref.source}')
            img = cv2.imread(ref.source, cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f'cannot decode image file {ref.source} (unreadable frame)')
            return img
        if ref.source != self._path or ref.frame < self._pos:
            self.close()
            if not osp.isfile(ref.source):
                raise FileNotFoundError(f'video file not found: {ref.source}')
            self._cap = cv2.VideoCapture(ref.source)
            if not self._cap.isOpened():
                raise OSError(f'cannot open video {ref.source}')
            self._path, self._pos = ref.source, 0
            if ref.frame > 0:  # seeking is approximate in some containers: decode on
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        while self._pos < ref.frame:
            if not self._cap.grab():
                raise OSError(f'cannot decode frame {self._pos} of video {ref.source} '
                              f'(unreadable frame; the video ends or is damaged)')
            self._pos += 1
        ok, img = self._cap.read()
        if not ok or img is None:
            raise OSError(f'cannot decode frame {ref.frame} of video {ref.source} '
                          '(unreadable frame; the video ends or is damaged)')
        self._pos += 1
        return img


def coverage_ranges(frames: Sequence[FrameRef]) -> List[list]:
    """Compress frames into ``[source, start, stop, step]`` ranges (order kept)."""
    out: List[list] = []
    by_src: Dict[str, List[int]] = {}
    for f in frames:
        by_src.setdefault(f.source, []).append(f.frame)
    for src, nums in by_src.items():
        nums = sorted(set(nums))
        i = 0
        while i < len(nums):
            if i + 1 < len(nums):
                step = nums[i + 1] - nums[i]
                j = i + 1
                while j + 1 < len(nums) and nums[j + 1] - nums[j] == step:
                    j += 1
                out.append([src, nums[i], nums[j] + 1, step])
                i = j + 1
            else:
                out.append([src, nums[i], nums[i] + 1, 1])
                i += 1
    return out


def iter_chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for a in range(0, len(items), size):
        yield items[a:a + size]
