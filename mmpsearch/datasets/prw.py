# Copyright (c) mmpsearch contributors. All rights reserved.
"""PRW, read from its official raw files (no conversion step).

Files (raw_formats.md §2.3; oimnetpp.md §5.2 for the loader conventions), under the
PRW root (``PRW-v16.04.20/``):

* ``frames/c{cam}s{seq}_{frame:06d}.jpg``; the camera id is the digit after ``c``;
* ``annotations/<frame>.jpg.mat``: one variable, ``box_new``, ``anno_file`` or
  ``anno_previous`` (tried in this order), n×5 rows ``[pid, x, y, w, h]`` with
  non-integer coordinates; pid −2 is an unlabelled person (``person_id`` −1 here);
* ``frame_train.mat`` / ``frame_test.mat``: ``img_index_train`` / ``img_index_test``,
  N×1 cells of frame names without extension (the split and its order);
* ``ID_train.mat`` (``ID_train``): the training identities (the label map, if present);
* ``query_info.txt``: ``pid x y w h frame`` per line (CRLF), split on whitespace.

Each query line copies an annotation row of its frame rounded to 4 decimals; the loader
finds that row (same pid, |Δ| summed ≤ ``query_tolerance`` after clipping at 0, as
raw_formats.md S8 checks) and, by default, uses the row's box as the query box. That is
the "query box fix": it makes the three real queries whose width rounds across an
integer (``c5s2_042630``, ``c5s2_082752``, ``c5s2_120599``) match their annotation, and
holds on any data, not only for those three names. The number of queries whose
int-truncated box differs from their row's is ``load_stats['query_box_fixes']`` (3 on the
real data).
"""
import logging
import os.path as osp
import re
from typing import Dict, List, Tuple

import numpy as np

from mmpsearch.registry import DATASETS
from ._mat import MatFormatError, cell_items, get_var, load_mat, mat_str
from .base_person_search import BasePersonSearchDataset, make_instance, read_image_size
from .protocol import all_but_query_protocol, build_search_protocol

ANNOTATION_KEYS = ('box_new', 'anno_file', 'anno_previous')
BOX_MODES = ('seqnet', 'spnet', 'float')
LABEL_MODES = ('sorted', 'oimnetpp')
QUERY_BOX_MODES = ('annotation', 'released')
_CAMERA = re.compile(r'c(\d)')


@DATASETS.register_module()
class PRWDataset(BasePersonSearchDataset):
    """PRW person search.

    Args:
        split (str): ``'train'`` (5,704 frames) or ``'test'`` (6,112 frames, with the
            2,057 queries and ``metainfo['search_protocol']``: ``standard`` and
            ``multi_view``).
        box_mode (str): how ``[x, y, w, h]`` floats become ``[x1, y1, x2, y2]``:
            ``'seqnet'`` (default; SeqNet/OIMNet++: clip x, y, w, h at 0, add, then
            truncate to int), ``'spnet'`` (SPNet: truncate each of x, y, w, h, clip x, y at
            0, add) or ``'float'`` (no truncation: ``[max(x,0), max(y,0), x+w, y+h]``).
        label_mode (str): ``person_label`` of labelled persons: ``'sorted'`` (default;
            rank among the training identities, from ``ID_train.mat`` or, without it, from
            the training frames: 483 rows on PRW, as SPNet) or ``'oimnetpp'`` (OIMNet++:
            ``pid - 1`` for pid ≤ 482, so the training ids 483 and 932 get no label;
            482 rows). ``known`` follows the map (``person_label >= 0``): a pid without
            a row is an unlabelled sample of the OIM loss (docs/datasets.md).
        query_box_mode (str): ``'annotation'`` (default: the matched annotation row's box,
            i.e. with the box fixes) or ``'released'`` (SeqNet/OIMNet++: the query line's
            ``[x, y, x+w, y+h]`` truncated, then clipped at 0).
        query_tolerance (float): largest summed |difference| between a query line and
            its annotation row (after clipping at 0).
        ann_file (str): the PRW root relative to ``data_root`` (holds the split files).
        data_prefix (dict): ``img_path``: the frame folder, relative to ``data_root``.
        ann_dir (str): the annotation folder, relative to ``data_root``.
        **kwargs: :class:`BasePersonSearchDataset` arguments.
    """
    DATASET_NAME = 'PRW'

    def __init__(self, split: str = 'train', box_mode: str = 'seqnet',
                 label_mode: str = 'sorted', query_box_mode: str = 'annotation',
                 query_tolerance: float = 1e-3, ann_file: str = '',
                 data_prefix: dict = dict(img_path='frames'), ann_dir: str = 'annotations',
                 **kwargs):
        for name, value, allowed in (('split', split, ('train', 'test')),
                                     ('box_mode', box_mode, BOX_MODES),
                                     ('label_mode', label_mode, LABEL_MODES),
                                     ('query_box_mode', query_box_mode, QUERY_BOX_MODES)):
            if value not in allowed:
                raise ValueError(f'{name} must be one of {allowed}, got {value!r}')
        self.split, self.box_mode, self.label_mode = split, box_mode, label_mode
        self.query_box_mode, self.query_tolerance = query_box_mode, query_tolerance
        self.ann_dir = ann_dir
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def _join_prefix(self):
        super()._join_prefix()
        if not self.ann_file:  # mmengine leaves an empty ann_file alone
            self.ann_file = self.data_root
        if not osp.isabs(self.ann_dir):
            self.ann_dir = osp.join(self.data_root, self.ann_dir)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        frames = self._frame_list(self.split)
        raw = {f: self._read_annotation(f) for f in frames}
        label_of = self._label_map(raw)
        data_list, kept_rows = [], {}
        for name in frames:
            path = osp.join(self.data_prefix['img_path'], name + '.jpg')
            source = self._ann_path(name)
            w, h = read_image_size(path, source)
            rows = raw[name]
            boxes = prw_boxes(rows[:, 1:], self.box_mode)
            keep = self._check_boxes(boxes, w, h, name + '.jpg', source)
            kept_rows[name] = (rows[keep], boxes[keep])
            instances = []
            for row, box in zip(rows[keep], boxes[keep]):
                pid = int(row[0])
                pid = -1 if pid == -2 else pid
                instances.append(make_instance(box, pid, label_of(pid) if pid > 0 else -1))
            data_list.append(dict(img_path=path, img_id=name + '.jpg', height=int(h),
                                  width=int(w), cam_id=_camera(name, source),
                                  instances=instances))
        if self.split == 'test':
            self._search_protocol = self._queries(data_list, frames, kept_rows)
        self._log_stats()
        return data_list

    def split_source(self) -> str:
        return osp.join(self.ann_file, f'frame_{self.split}.mat')

    def _ann_path(self, frame: str) -> str:
        return osp.join(self.ann_dir, frame + '.jpg.mat')

    def _frame_list(self, split: str) -> List[str]:
        path = osp.join(self.ann_file, f'frame_{split}.mat')
        var = get_var(load_mat(path), path, [f'img_index_{split}'])
        names = [mat_str(v, path, f'frame {i + 1}') for i, v in
                 enumerate(cell_items(var, path, f'img_index_{split}'))]
        if len(set(names)) != len(names):
            raise MatFormatError(f'{path}: a frame is listed twice')
        for n in names:
            _camera(n, path)
        return names

    def _read_annotation(self, frame: str) -> np.ndarray:
        """(n, 5) float64 rows [pid, x, y, w, h] of one frame."""
        path = self._ann_path(frame)
        rows = np.asarray(get_var(load_mat(path), path, ANNOTATION_KEYS))
        if rows.size == 0:
            return np.zeros((0, 5))
        if rows.dtype.kind not in 'uif' or rows.ndim != 2 or rows.shape[1] != 5:
            raise MatFormatError(f'{path}: expected n x 5 numbers [pid x y w h], got '
                                 f'{rows.dtype} {rows.shape}')
        rows = rows.astype(np.float64)  # integer-only files would be stored as uint8/16
        pid = rows[:, 0]
        bad = (pid != np.round(pid)) | ((pid != -2) & (pid < 1))
        if bad.any():
            raise MatFormatError(f'{path}: person id {pid[bad][0]} is neither -2 nor a '
                                 'positive integer')
        if not np.all(np.isfinite(rows)):
            raise MatFormatError(f'{path}: non-finite box coordinates')
        return rows

    def _label_map(self, raw: Dict[str, np.ndarray]):
        if self.label_mode == 'oimnetpp':
            # OIMNet++ maps 483 and 932 (and -2) to its unlabelled pid; LUT rows pid - 1
            self._num_person_ids = 482
            return lambda pid: pid - 1 if 1 <= pid <= 482 else -1
        id_path = osp.join(self.ann_file, 'ID_train.mat')
        if osp.isfile(id_path):
            ids = np.asarray(get_var(load_mat(id_path), id_path, ['ID_train']))
            train_ids = sorted(set(int(v) for v in ids.reshape(-1)))
        else:
            source = raw if self.split == 'train' else {
                f: self._read_annotation(f) for f in self._frame_list('train')}
            train_ids = sorted(set(int(p) for rows in source.values() for p in rows[:, 0]
                                   if p > 0))
        table = {pid: i for i, pid in enumerate(train_ids)}
        self._num_person_ids = len(table)
        if self.split == 'train':
            missing = {int(p) for rows in raw.values() for p in rows[:, 0]
                       if p > 0 and int(p) not in table}
            self._count('pids_not_in_ID_train', len(missing),
                        f'training pids are missing from ID_train.mat, e.g. '
                        f'{sorted(missing)[:3]}; they get no person_label')
        return lambda pid: table.get(pid, -1)

    # ------------------------------------------------------------------ queries
    def _queries(self, data_list, frames, kept_rows) -> dict:
        path = osp.join(self.ann_file, 'query_info.txt')
        index = {f: i for i, f in enumerate(frames)}
        queries = []
        for lineno, (pid, xywh, frame) in parse_query_info(path):
            where = f'{path}:{lineno}'
            if frame not in index:
                raise ValueError(f'{where}: frame {frame!r} is not a test frame '
                                 '(frame_test.mat)')
            rows, boxes = kept_rows[frame]
            cand = np.nonzero(rows[:, 0] == pid)[0]
            if cand.size == 0:
                raise ValueError(f'{where}: frame {frame} has no annotated box of person '
                                 f'{pid}')
            diff = np.abs(np.maximum(rows[cand, 1:], 0)
                          - np.maximum(np.asarray(xywh), 0)).sum(axis=1)
            best = cand[int(np.argmin(diff))]
            if diff.min() > self.query_tolerance:
                raise ValueError(f'{where}: the query box {list(xywh)} matches no annotation '
                                 f'row of person {pid} in {frame} (closest differs by '
                                 f'{diff.min():.4f})')
            if np.any(np.trunc(xywh).astype(np.int64) != np.trunc(rows[best, 1:]).astype(
                    np.int64)):
                self._count('query_box_fixes', 1, 'query boxes replaced by their annotation '
                            "row's box (their truncated [x y w h] differed)", logging.INFO,
                            example=f'line {lineno}: {frame} w {xywh[2]} -> {rows[best, 3]}')
            if self.query_box_mode == 'annotation':
                bbox = boxes[best]
            else:
                x, y, w, h = xywh
                bbox = np.maximum(np.trunc([x, y, x + w, y + h]), 0)
            image_idx = index[frame]
            data_list[image_idx].setdefault('queries', []).append(
                dict(bbox=[float(v) for v in bbox], person_id=int(pid),
                     query_idx=len(queries)))
            queries.append(dict(image_idx=image_idx, bbox=bbox, person_id=int(pid)))
        for info in data_list:
            info.setdefault('queries', [])
        qidx = np.arange(len(queries))
        protocols = dict(standard=all_but_query_protocol(qidx, cross_camera=False),
                         multi_view=all_but_query_protocol(qidx, cross_camera=True))
        return build_search_protocol(self.DATASET_NAME, data_list, queries, protocols)


def prw_boxes(xywh: np.ndarray, mode: str) -> np.ndarray:
    """PRW ``[x, y, w, h]`` floats → ``[x1, y1, x2, y2]`` float64 (see ``box_mode``)."""
    xywh = np.asarray(xywh, np.float64).reshape(-1, 4)
    if mode == 'seqnet':  # clip(x, y, w, h) → add → truncate (oimnetpp.md §5.2)
        c = np.maximum(xywh, 0)
        return np.trunc(np.concatenate([c[:, :2], c[:, :2] + c[:, 2:]], axis=1))
    if mode == 'spnet':  # truncate each number, clip x, y at 0, then add (spnet.md §8.2)
        t = np.trunc(xywh)
        t[:, :2] = np.maximum(t[:, :2], 0)
        return np.concatenate([t[:, :2], t[:, :2] + t[:, 2:]], axis=1)
    if mode == 'float':
        return np.concatenate([np.maximum(xywh[:, :2], 0), xywh[:, :2] + xywh[:, 2:]], axis=1)
    raise ValueError(f'unknown box_mode {mode!r}')


def parse_query_info(path: str) -> List[Tuple[int, Tuple[int, Tuple[float, ...], str]]]:
    """``query_info.txt`` → [(line number, (pid, (x, y, w, h), frame)), ...].

    Split on whitespace (raw_formats.md D7), so CRLF and LF both work; blank lines are
    skipped; anything else malformed raises ``ValueError`` naming ``path:line``.
    """
    try:
        with open(path, 'rb') as f:
            lines = f.read().split(b'\n')
    except FileNotFoundError:
        raise FileNotFoundError(f'query file not found: {path}') from None
    out = []
    for lineno, raw in enumerate(lines, 1):
        tokens = raw.split()
        if not tokens:
            continue
        if len(tokens) != 6:
            raise ValueError(f'{path}:{lineno}: expected "pid x y w h frame", got '
                             f'{raw.decode("utf-8", "replace").strip()!r}')
        try:
            pid = int(tokens[0])
            xywh = tuple(float(t) for t in tokens[1:5])
            frame = tokens[5].decode('ascii')
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f'{path}:{lineno}: cannot parse '
                             f'{raw.decode("utf-8", "replace").strip()!r} ({e})') from None
        if not all(np.isfinite(xywh)) or xywh[2] <= 0 or xywh[3] <= 0:
            raise ValueError(f'{path}:{lineno}: invalid query box {list(xywh)}')
        out.append((lineno, (pid, xywh, frame[:-4] if frame.endswith('.jpg') else frame)))
    return out


def _camera(name: str, source: str) -> int:
    m = _CAMERA.search(name)
    if not m:
        raise MatFormatError(f'{source}: frame name {name!r} has no camera (c<digit>)')
    return int(m.group(1))


__all__ = ['PRWDataset', 'prw_boxes', 'parse_query_info']
