# Copyright (c) mmpsearch contributors. All rights reserved.
"""Common base of the person-search datasets (docs/data_contract.md §1).

A subclass's ``load_data_list`` returns the data_list and may set
``self._search_protocol`` (test splits) and ``self._num_person_ids``; this base puts them
into ``metainfo`` once the list is final, refuses to subset a test split (its protocol
refers to every test image by position), counts and logs skipped boxes, and reads image
sizes from the files' headers with errors that name the file.
"""
import logging
from collections import Counter
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmdet.datasets import BaseDetDataset
from mmengine.logging import print_log
from PIL import Image, UnidentifiedImageError

BAD_BOX_POLICIES = ('error', 'skip')


class BasePersonSearchDataset(BaseDetDataset):
    """Base of :class:`CUHKSYSUDataset`, :class:`PRWDataset`, :class:`COCOPersonsDataset`.

    Args:
        bad_box (str): what to do with an annotated box that lies entirely outside its
            image: ``'error'`` (default: a ``ValueError`` naming the file) or ``'skip'``
            (drop it, counted in ``load_stats['outside_image']`` and logged).
        *args, **kwargs: :class:`mmdet.datasets.BaseDetDataset` arguments
            (``data_root``, ``data_prefix``, ``pipeline``, ``test_mode``, ``filter_cfg``,
            ``indices``, ``serialize_data``, ``lazy_init``, ...). ``filter_cfg`` accepts
            ``filter_empty_gt`` (drop images without boxes), ``filter_no_known`` (drop
            images without a labelled person) and ``min_size`` (drop smaller images); it
            is ignored in ``test_mode``, like mmdet's ``CocoDataset``.
    """
    METAINFO = dict(classes=('person', ), palette=[(220, 20, 60)])
    DATASET_NAME = ''

    def __init__(self, *args, bad_box: str = 'error', **kwargs):
        if bad_box not in BAD_BOX_POLICIES:
            raise ValueError(f'bad_box must be one of {BAD_BOX_POLICIES}, got {bad_box!r}')
        self.bad_box = bad_box
        self.load_stats: Counter = Counter()
        self._notes = {}
        self._search_protocol: Optional[dict] = None
        self._num_person_ids = 0
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ life cycle
    def full_init(self) -> None:
        """Load, filter, subset and serialise, then publish the metainfo."""
        if self._fully_initialized:
            return
        self.data_list = self.load_data_list()
        num_loaded = len(self.data_list)
        if self._search_protocol is not None and (self._indices is not None
                                                  or (self.filter_cfg and not self.test_mode)):
            raise ValueError(
                f'{type(self).__name__}: a test split carries a search protocol that refers '
                'to every test image by position; `indices` and `filter_cfg` would break it')
        self.data_list = self.filter_data()
        if self._indices is not None:
            self.data_list = self._get_unserialized_subset(self._indices)
        if not self.data_list:
            self._refuse_empty(num_loaded)
        if not self.test_mode:
            self._warn_empty_frames()
        self._metainfo['num_person_ids'] = int(self._num_person_ids)
        if self._search_protocol is not None:
            self._metainfo['search_protocol'] = self._search_protocol
        if self.serialize_data and self.data_list:
            self.data_bytes, self.data_address = self._serialize_data()
        elif self.serialize_data:  # mmengine cannot serialise an empty list
            self.data_bytes = np.zeros(0, np.uint8)
            self.data_address = np.zeros(0, np.int64)
            self.data_list.clear()
        self._fully_initialized = True

    def filter_data(self) -> List[dict]:
        """Apply ``filter_cfg`` (training only)."""
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        empty = self.filter_cfg.get('filter_empty_gt', False)
        no_known = self.filter_cfg.get('filter_no_known', False)
        min_size = self.filter_cfg.get('min_size', 0)
        kept = []
        for info in self.data_list:
            if empty and not info['instances']:
                continue
            if no_known and not any(i['known'] for i in info['instances']):
                continue
            if min(info['width'], info['height']) < min_size:
                continue
            kept.append(info)
        n = len(self.data_list) - len(kept)
        self.load_stats['filtered_images'] += n
        if n:
            print_log(f'{type(self).__name__}: filter_cfg removed {n} images',
                      logger='current')
        return kept

    def _warn_empty_frames(self) -> None:
        """Warn once, when a training split is loaded, about frames without any box.

        Such a frame (every box dropped as degenerate or outside, an empty annotation
        file, a custom list) still trains, silently: the detector sees background only,
        the box-regression and re-id losses get nothing from it (0 for a batch of only
        such frames). A few are legitimate; many usually mean an annotation or path
        problem, which nothing in the training log would otherwise show.
        """
        empty = [info['img_id'] for info in self.data_list if not info['instances']]
        self.load_stats['frames_without_boxes'] = len(empty)
        if not empty:
            return
        keep_empty = getattr(self, 'keep_empty', False)  # asked for (COCOPersons)
        print_log(
            f'{type(self).__name__}: {len(empty)} of {len(self.data_list)} training frames '
            f'have no annotated box (e.g. {", ".join(map(str, empty[:5]))}); they teach '
            'the detector background only and give the box-regression and re-id losses '
            'nothing. Check their annotation files, or drop them with '
            'filter_cfg=dict(filter_empty_gt=True).', logger='current',
            level=logging.INFO if keep_empty else logging.WARNING)

    def split_source(self) -> str:
        """The file that lists the split's images (named in errors about the split)."""
        return str(self.ann_file)

    def _refuse_empty(self, num_loaded: int) -> None:
        """An empty split would fail later inside mmengine (a ``ZeroDivisionError`` in the
        sampler, or a zero ``epoch_length``) with nothing naming the data: stop here."""
        split = getattr(self, 'split', None)
        what = f'the {split} split' if split else 'the data set'
        name = type(self).__name__
        if num_loaded == 0:
            raise ValueError(f'{name}: {what} is empty: {self.split_source()} lists no '
                             'usable image')
        raise ValueError(f'{name}: {what} is empty after filter_cfg={self.filter_cfg} / '
                         f'indices={self._indices} removed all {num_loaded} images listed '
                         f'by {self.split_source()}')

    def get_data_info(self, idx: int) -> dict:
        """The ``idx``-th item; a :class:`~mmpsearch.datasets.samplers.ViewIndex` adds
        its ``view_idx`` (which augmented view of the image this is)."""
        info = super().get_data_info(int(idx))
        view = getattr(idx, 'view_idx', None)
        if view is not None:
            info['view_idx'] = int(view)
        return info

    def get_cat_ids(self, idx: int) -> List[int]:
        return [0] * len(self.get_data_info(idx)['instances'])

    # ------------------------------------------------------------------ helpers
    def _count(self, key: str, n: int, what: str, level: int = logging.WARNING,
               example: Optional[str] = None) -> None:
        """Count ``n`` skipped/fixed items under ``load_stats[key]``; :meth:`_log_stats`
        logs one summary line per key (with up to 3 examples) when loading ends."""
        if n:
            self.load_stats[key] += n
            note = self._notes.setdefault(key, [what, level, []])
            if example is not None and len(note[2]) < 3:
                note[2].append(example)

    def _check_boxes(self, boxes: np.ndarray, width: int, height: int, where: str,
                     source: str) -> np.ndarray:
        """Mask of boxes to keep: degenerate boxes (x2 ≤ x1 or y2 ≤ y1) are dropped
        (the official loaders' filter, counted); a box with no overlap with its image
        raises, or is dropped under ``bad_box='skip'``.

        Args:
            boxes (np.ndarray): (N, 4) xyxy.
            width, height (int): the image size.
            where (str): the image, for messages.
            source (str): the annotation file, for messages.

        Returns:
            np.ndarray: (N,) bool, True for boxes to keep.
        """
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        outside = ~degenerate & ((boxes[:, 0] >= width) | (boxes[:, 1] >= height)
                                 | (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0))
        if outside.any() and self.bad_box == 'error':
            b = boxes[np.nonzero(outside)[0][0]].tolist()
            raise ValueError(f'{source}: box {b} of {where} lies outside the '
                             f'{width}x{height} image (set bad_box="skip" to drop such '
                             'boxes)')
        self.load_stats['degenerate'] += int(degenerate.sum())
        self.load_stats['outside_image'] += int(outside.sum())
        partial = ~degenerate & ~outside & ((boxes[:, 0] < 0) | (boxes[:, 1] < 0)
                                            | (boxes[:, 2] > width) | (boxes[:, 3] > height))
        self.load_stats['beyond_border'] += int(partial.sum())
        return ~(degenerate | outside)

    def _log_stats(self) -> None:
        """Log the counters gathered while loading, one line each."""
        name = type(self).__name__
        stats = self.load_stats
        if stats['degenerate']:
            print_log(f'{name}: dropped {stats["degenerate"]} degenerate boxes (w <= 0 or '
                      'h <= 0), as the official loaders do', logger='current',
                      level=logging.WARNING)
        if stats['outside_image']:
            print_log(f'{name}: dropped {stats["outside_image"]} boxes outside their image',
                      logger='current', level=logging.WARNING)
        if stats['beyond_border']:
            print_log(f'{name}: {stats["beyond_border"]} boxes extend beyond their image '
                      'border (kept, like the official loaders)', logger='current')
        for key, (what, level, examples) in self._notes.items():
            eg = f' (e.g. {"; ".join(examples)})' if examples else ''
            print_log(f'{name}: {stats[key]} {what}{eg}', logger='current', level=level)
        self._notes = {}


def read_image_size(path: str, listed_in: str) -> Tuple[int, int]:
    """``(width, height)`` from an image file's header, without decoding it.

    Args:
        path (str): the image file.
        listed_in (str): the annotation file that lists it, for the error message.
    """
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise FileNotFoundError(f'image file not found: {path} (listed in {listed_in})') \
            from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f'{path}: not a readable image ({e}); listed in {listed_in}') \
            from e


def make_instance(bbox: Sequence[float], person_id: int, person_label: int) -> dict:
    """One data_list instance (docs/data_contract.md §1).

    ``known`` follows the label map: a box is a labelled sample of the OIM loss exactly
    when its identity has a lookup-table row (``person_label >= 0``). An identity that the
    map leaves out (PRW's training ids 483 and 932 under ``label_mode='oimnetpp'``, a pid
    missing from ``ID_train.mat``, every test identity) is unlabelled for training even
    though its ``person_id`` is kept for the evaluation.
    """
    return dict(bbox=[float(v) for v in bbox], bbox_label=0, ignore_flag=0,
                person_id=int(person_id), person_label=int(person_label),
                known=int(person_label) >= 0)
