# Copyright (c) mmpsearch contributors. All rights reserved.
"""CUHK-SYSU, read from its official raw files (no conversion step).

Files (raw_formats.md §2.2; oimnetpp.md §5.1 for the loader conventions):

* ``Image/SSM/s<k>.jpg``;
* ``annotation/Images.mat`` (``Img``: every image's boxes, [x y w h], uint8/uint16);
* ``annotation/pool.mat`` (``pool``: the 6,978 test images, in the order used for the
  test split); training images are all other images, **sorted by name** (D6);
* ``annotation/test/train_test/Train.mat`` (``Train``: the 5,532 training persons; cell
  ``t`` is ``person_label`` t, i.e. pid t+1 of the released code);
* ``annotation/test/train_test/TestG{50,…,4000}.mat`` and ``annotation/test/subset/``
  ``Occlusion.mat`` (``Occlusion1``) / ``Resolution.mat`` (``Test_Size``): the queries and
  their fixed gallery lists.

Conventions: ``person_id`` is the number of the file's ``idname`` (``'p10581'`` → 10581,
unique over train and test), ``-1`` for unlabelled persons; boxes are cast to int before
``x + w`` and become ``[x, y, x + w, y + h]`` without clipping; boxes with w ≤ 0 or h ≤ 0
are dropped and counted. Test images are labelled from every protocol file read (query
boxes and all non-empty gallery slots), and ``search_protocol`` keeps every gallery list
exactly as the ``.mat`` file has it (order, duplicates, own-image entries).
"""
import glob
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

from mmpsearch.registry import DATASETS
from ._mat import (MatFormatError, cell_items, get_var, load_mat, mat_box, mat_str,
                   struct_items)
from ._mat_protocol import NameIndex, ProtocolTable, read_protocol_mat
from .base_person_search import BasePersonSearchDataset, make_instance, read_image_size
from .protocol import build_search_protocol, listed_protocol

GALLERY_SIZES = (50, 100, 500, 1000, 2000, 4000)
SUBSETS = {'Occlusion': ('Occlusion.mat', ('Occlusion1', 'Occlusion')),
           'Resolution': ('Resolution.mat', ('Test_Size', 'Resolution'))}
_IDNAME = re.compile(r'^p(\d+)$')


@DATASETS.register_module()
class CUHKSYSUDataset(BasePersonSearchDataset):
    """CUHK-SYSU person search.

    Args:
        split (str): ``'train'`` (11,206 images, 5,532 labelled persons) or ``'test'``
            (the 6,978 pool images, with ``metainfo['search_protocol']``).
        protocols (Sequence[str], optional): test protocols to read: ``'G50'`` …
            ``'G4000'`` (any ``'G<N>'`` with a ``TestG<N>.mat``), ``'Occlusion'``,
            ``'Resolution'``. ``None`` reads every one whose file exists. Query rows follow
            the first ``G<N>`` file (TestG50 in the real data), as the released
            evaluation does.
        ann_file (str): the annotation folder, relative to ``data_root``.
        data_prefix (dict): ``img_path``: the image folder, relative to ``data_root``.
        fast_mat (bool): read protocol files with the vectorised reader (falls back to
            scipy by itself when a file needs it).
        **kwargs: :class:`BasePersonSearchDataset` arguments.
    """
    DATASET_NAME = 'CUHK-SYSU'

    def __init__(self, split: str = 'train', protocols: Optional[Sequence[str]] = None,
                 ann_file: str = 'annotation', data_prefix: dict = dict(img_path='Image/SSM'),
                 fast_mat: bool = True, **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f'split must be "train" or "test", got {split!r}')
        self.split = split
        self.protocols = None if protocols is None else list(protocols)
        self.fast_mat = fast_mat
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        ann = self.ann_file
        images = _read_images(osp.join(ann, 'Images.mat'))
        pool_path = osp.join(ann, 'pool.mat')
        pool = [mat_str(v, pool_path, f'pool entry {i}') for i, v in
                enumerate(cell_items(get_var(load_mat(pool_path), pool_path, ['pool']),
                                     pool_path, 'pool'))]
        unknown = [n for n in pool if n not in images]
        if unknown:
            raise MatFormatError(f'{pool_path}: {len(unknown)} test images are not in '
                                 f'Images.mat, e.g. {unknown[0]!r}')
        pool_set = set(pool)
        names = pool if self.split == 'test' else sorted(n for n in images if n not in pool_set)
        persons = _read_train_persons(osp.join(ann, 'test', 'train_test', 'Train.mat'))
        self._num_person_ids = len(persons)
        label_of = {pid: t for t, (pid, _) in enumerate(persons)}

        data_list, boxes_of = self._image_items(names, images)
        index = {n: i for i, n in enumerate(names)}
        labels = _Labeller(boxes_of, self)
        if self.split == 'train':
            for pid, scenes in persons:
                for imname, box in scenes:
                    labels.assign(imname, box, pid, 'train_scene')
        else:
            tables = self._read_protocols(names)
            rows = self._assign_query_rows(tables, index)
            for table in tables.values():
                for imname, box, idname in _query_keys(table):
                    labels.assign(imname, box, _pid(idname, table.path), 'query')
                qpids = [_pid(i, table.path) for i in table.query_idnames]
                gimg = table.gallery_image_idx[table.pos_query, table.pos_slot]
                for q, img, box in zip(table.pos_query.tolist(), gimg.tolist(),
                                       table.pos_boxes):
                    labels.assign(names[img], box, qpids[q], 'gallery')
        for info in data_list:
            n = info['img_id']
            for ins, box, pid in zip(info['instances'], boxes_of[n], labels.pids[n]):
                ins.update(make_instance(_xyxy(box), pid, label_of.get(int(pid), -1)
                                         if pid >= 0 else -1))
        if self.split == 'test':
            self._search_protocol = self._protocol(tables, rows, data_list, names)
        self._log_stats()
        return data_list

    def split_source(self) -> str:
        pool = osp.join(self.ann_file, 'pool.mat')
        # the training split is every Images.mat image that pool.mat does not list
        return pool if self.split == 'test' else \
            f'{osp.join(self.ann_file, "Images.mat")} (less the images of {pool})'

    def _image_items(self, names: List[str], images: Dict[str, np.ndarray]):
        """data_list items (instances still without labels) and each image's kept boxes."""
        data_list, boxes_of = [], {}
        source = osp.join(self.ann_file, 'Images.mat')
        for n in names:
            path = osp.join(self.data_prefix['img_path'], n)
            w, h = read_image_size(path, source)
            boxes = images[n]
            keep = self._check_boxes(_xyxy(boxes), w, h, n, source)
            boxes_of[n] = boxes[keep]
            data_list.append(dict(img_path=path, img_id=n, height=int(h), width=int(w),
                                  cam_id=-1, instances=[{} for _ in range(int(keep.sum()))]))
        return data_list, boxes_of

    # ------------------------------------------------------------------ protocols
    def _protocol_files(self) -> Dict[str, Tuple[str, Optional[Sequence[str]]]]:
        base = osp.join(self.ann_file, 'test')
        files = {}
        found = {}
        for path in glob.glob(osp.join(base, 'train_test', 'TestG*.mat')):
            m = re.match(r'^TestG(\d+)\.mat$', osp.basename(path))
            if m:
                found[int(m.group(1))] = path
        for n in sorted(found):
            files[f'G{n}'] = (found[n], [f'TestG{n}'])
        for name, (fname, keys) in SUBSETS.items():
            files[name] = (osp.join(base, 'subset', fname), keys)
        if self.protocols is None:
            return {k: v for k, v in files.items() if osp.isfile(v[0])}
        out = {}
        for name in self.protocols:
            m = re.match(r'^G(\d+)$', name)
            if m:
                path = osp.join(base, 'train_test', f'TestG{m.group(1)}.mat')
                out[name] = (path, [f'TestG{m.group(1)}'])
            elif name in SUBSETS:
                out[name] = files[name]
            else:
                raise ValueError(f'unknown CUHK-SYSU protocol {name!r}; use G<N>, '
                                 'Occlusion or Resolution')
            if not osp.isfile(out[name][0]):
                raise FileNotFoundError(f'protocol {name}: file not found: {out[name][0]}')
        return out

    def _read_protocols(self, names: List[str]) -> Dict[str, ProtocolTable]:
        files = self._protocol_files()
        galleries = sorted((int(k[1:]), k) for k in files if k.startswith('G'))
        if not galleries:
            raise FileNotFoundError('CUHK-SYSU test split: no TestG<N>.mat in '
                                    f'{osp.join(self.ann_file, "test", "train_test")}')
        order = [k for _, k in galleries] + [k for k in files if not k.startswith('G')]
        name_index = NameIndex(names)
        tables = {}
        for key in order:
            path, var_names = files[key]
            table = read_protocol_mat(path, var_names, name_index, fast=self.fast_mat)
            if np.any(table.gallery_image_idx < 0):
                q, s, img = table.unknown_names[0]
                raise MatFormatError(f'{path}: gallery slot {s} of query {q} names {img!r}, '
                                     'which is not a test (pool.mat) image')
            qidx = name_index(table.query_names)
            if np.any(qidx < 0):
                bad = table.query_names[int(np.nonzero(qidx < 0)[0][0])]
                raise MatFormatError(f'{path}: query image {bad!r} is not a test (pool.mat) '
                                     'image')
            for idname in set(table.query_idnames):
                _pid(idname, path)
            tables[key] = table
            print_log(f'CUHKSYSUDataset: {key}: {len(table.query_names)} queries x '
                      f'{table.gallery_image_idx.shape[1]} gallery images ({path}, '
                      f'{table.reader} reader)', logger='current')
        return tables

    def _assign_query_rows(self, tables: Dict[str, ProtocolTable],
                           index: Dict[str, int]) -> Dict[str, np.ndarray]:
        """Query rows: the first file's order; other files' queries matched by
        (image, box, idname), unseen ones appended (D3: the files share one order)."""
        self._queries: List[dict] = []
        key_to_row: Dict[tuple, int] = {}
        rows = {}
        for name, table in tables.items():
            r = np.empty(len(table.query_names), np.int64)
            for q, key in enumerate(_query_keys(table)):
                k = (key[0], tuple(key[1].tolist()), key[2])
                if k not in key_to_row:
                    key_to_row[k] = len(self._queries)
                    self._queries.append(dict(image_idx=index[key[0]], bbox=_xyxy(key[1]),
                                              person_id=_pid(key[2], table.path)))
                r[q] = key_to_row[k]
            rows[name] = r
        return rows

    def _protocol(self, tables, rows, data_list, names) -> dict:
        for row, q in enumerate(self._queries):
            data_list[q['image_idx']].setdefault('queries', []).append(
                dict(bbox=[float(v) for v in q['bbox']], person_id=int(q['person_id']),
                     query_idx=row))
        for info in data_list:
            info.setdefault('queries', [])
        protocols = {}
        for name, t in tables.items():
            protocols[name] = listed_protocol(rows[name], t.gallery_image_idx, t.pos_query,
                                              t.pos_slot, _xyxy(t.pos_boxes))
        return build_search_protocol(self.DATASET_NAME, data_list, self._queries, protocols)


class _Labeller:
    """Gives person ids to annotated boxes found by exact (image, [x y w h]) match.

    Misses and conflicts are counted (``load_stats``) and summarised once, never raised:
    the official loaders skip them silently.
    """

    def __init__(self, boxes_of: Dict[str, np.ndarray], dataset: 'CUHKSYSUDataset'):
        self.pids = {n: np.full(len(b), -1, np.int64) for n, b in boxes_of.items()}
        self.index = {}
        for n, boxes in boxes_of.items():
            for k, b in enumerate(boxes.tolist()):
                self.index.setdefault((n, *b), k)  # the first equal box, as S2
        self.dataset = dataset

    def assign(self, imname: str, box: np.ndarray, pid: int, what: str) -> None:
        pids = self.pids.get(imname)
        if pids is None:
            self.dataset._count(f'{what}_image_not_in_split', 1,
                                f'{what} boxes in images outside the {self.dataset.split} '
                                'split (ignored)', example=imname)
            return
        k = self.index.get((imname, *np.asarray(box).tolist()))
        if k is None:
            self.dataset._count(f'{what}_box_not_annotated', 1,
                                f'{what} boxes are not among the Images.mat boxes (left '
                                'unlabelled)', example=f'{imname} {np.asarray(box).tolist()}')
        elif pids[k] >= 0 and pids[k] != pid:
            self.dataset._count('conflicting_labels', 1, 'boxes are labelled with two person '
                                'ids (the first is kept)',
                                example=f'{imname} {np.asarray(box).tolist()}: {pids[k]}/{pid}')
        else:
            pids[k] = pid


# ---------------------------------------------------------------------- file readers
def _xyxy(xywh) -> np.ndarray:
    """int [x, y, w, h] → float64 [x, y, x + w, y + h] (cast first: uint8 wraps)."""
    b = np.asarray(xywh).astype(np.int64).reshape(-1, 4)
    out = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1).astype(np.float64)
    return out[0] if np.ndim(xywh) == 1 else out


def _pid(idname: str, path: str) -> int:
    m = _IDNAME.match(idname)
    if not m:
        raise MatFormatError(f'{path}: person name {idname!r} is not of the form p<number>')
    return int(m.group(1))


def _query_keys(table: ProtocolTable):
    for name, box, idname in zip(table.query_names, table.query_boxes, table.query_idnames):
        yield name, box, idname


def _read_images(path: str) -> Dict[str, np.ndarray]:
    """``Images.mat`` → {image name: (n, 4) int64 [x, y, w, h]} (in file order)."""
    recs = struct_items(get_var(load_mat(path), path, ['Img']), path,
                        ('imname', 'box'), 'Img')
    images = {}
    for i, rec in enumerate(recs):
        name = mat_str(rec['imname'], path, f'Img({i + 1}).imname')
        if name in images:
            raise MatFormatError(f'{path}: image {name!r} is listed twice')
        boxes = []
        box_field = np.asarray(rec['box'])
        if box_field.size:  # an image may list no person
            for j, b in enumerate(struct_items(box_field, path, ('idlocate', ),
                                               f'Img({i + 1}).box')):
                xywh = mat_box(b['idlocate'], path, f'{name} box {j + 1}')
                if xywh is None:
                    raise MatFormatError(f'{path}: {name} box {j + 1} is empty')
                boxes.append(xywh)
        images[name] = np.asarray(boxes, np.int64).reshape(-1, 4)
    return images


def _read_train_persons(path: str) -> List[Tuple[int, List[Tuple[str, np.ndarray]]]]:
    """``Train.mat`` → [(person_id, [(image name, [x, y, w, h]), ...]), ...] in cell order."""
    cells = cell_items(get_var(load_mat(path), path, ['Train']), path, 'Train')
    persons, seen = [], {}
    for t, cell in enumerate(cells):
        recs = struct_items(cell, path, ('idname', 'scene'), f'Train{{{t + 1}}}')
        if len(recs) != 1:
            raise MatFormatError(f'{path}: Train{{{t + 1}}} should hold a 1x1 struct')
        pid = _pid(mat_str(recs[0]['idname'], path, f'Train{{{t + 1}}}.idname'), path)
        if pid in seen:
            raise MatFormatError(f'{path}: person p{pid} is listed twice (cells '
                                 f'{seen[pid] + 1} and {t + 1})')
        seen[pid] = t
        scenes = []
        for j, s in enumerate(struct_items(recs[0]['scene'], path, ('imname', 'idlocate'),
                                           f'Train{{{t + 1}}}.scene')):
            box = mat_box(s['idlocate'], path, f'p{pid} scene {j + 1}')
            if box is None:
                raise MatFormatError(f'{path}: p{pid} scene {j + 1} has an empty box')
            scenes.append((mat_str(s['imname'], path, f'p{pid} scene {j + 1}'), box))
        persons.append((pid, scenes))
    return persons

