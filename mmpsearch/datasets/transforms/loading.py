# Copyright (c) mmpsearch contributors. All rights reserved.
"""Loading transforms: the image (with errors that name the file) and the person-search
annotations of a data_list item (docs/data_contract.md §1 → pipeline keys)."""
import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.structures.bbox import HorizontalBoxes
from mmengine import fileio

from mmpsearch.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadPersonSearchImage(LoadImageFromFile):
    """``LoadImageFromFile`` that fails clearly on a missing or corrupt image file and on
    an image whose size differs from the annotation's ``height``/``width`` (which would
    otherwise silently misplace every box).

    Args:
        check_size (bool): compare the decoded size with the data info's size.
        **kwargs: :class:`mmcv.transforms.LoadImageFromFile` arguments.
    """

    def __init__(self, check_size: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.check_size = check_size

    def transform(self, results: dict) -> dict:
        filename = results['img_path']
        try:
            img_bytes = fileio.get(filename, backend_args=self.backend_args)
        except FileNotFoundError:
            raise FileNotFoundError(f'image file not found: {filename}') from None
        try:
            img = mmcv.imfrombytes(img_bytes, flag=self.color_type,
                                   backend=self.imdecode_backend)
        except Exception as e:  # noqa: BLE001  (decoders raise many types)
            raise OSError(f'cannot decode image file {filename}: {e}') from e
        if img is None:
            raise OSError(f'cannot decode image file {filename} ({len(img_bytes)} bytes): '
                          'corrupt or not an image')
        h, w = img.shape[:2]
        if self.check_size and 'height' in results and 'width' in results and (
                (h, w) != (results['height'], results['width'])):
            raise ValueError(f'{filename}: the image is {w}x{h} but its annotation says '
                             f'{results["width"]}x{results["height"]}')
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class LoadPersonSearchAnnotations(LoadAnnotations):
    """mmdet's ``LoadAnnotations`` plus the person-search fields.

    Adds ``gt_person_ids`` (int64), ``gt_person_labels`` (int64), ``gt_known`` (bool,
    ``person_label >= 0``: an instance whose ``known`` disagrees raises) and
    ``gt_instance_ids`` (int64), aligned with ``gt_bboxes``, and, when ``with_query`` and
    the item has ``queries`` (test splits), ``query_bboxes`` (HorizontalBoxes),
    ``query_person_ids`` and ``query_idx`` (int64).

    Args:
        with_query (bool): load the image's query boxes.
        **kwargs: :class:`mmdet.datasets.transforms.LoadAnnotations` arguments
            (``with_bbox=True``, ``with_label=True`` by default).
    """

    def __init__(self, with_query: bool = True, **kwargs):
        kwargs.setdefault('with_bbox', True)
        kwargs.setdefault('with_label', True)
        super().__init__(**kwargs)
        self.with_query = with_query

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        instances = results.get('instances', [])
        results['gt_person_ids'] = np.array([i['person_id'] for i in instances], np.int64)
        results['gt_person_labels'] = np.array([i['person_label'] for i in instances],
                                               np.int64)
        labels = results['gt_person_labels']
        known = np.array([i.get('known', i['person_label'] >= 0) for i in instances], bool)
        if np.any(known != (labels >= 0)):
            k = int(np.nonzero(known != (labels >= 0))[0][0])
            raise ValueError(
                f'{results.get("img_path")}: instance {k} has known={bool(known[k])} but '
                f'person_label={int(labels[k])}; `known` must follow the label map '
                '(known == person_label >= 0, docs/data_contract.md §1), otherwise the OIM '
                'loss gets a labelled sample without a lookup-table row')
        results['gt_known'] = known
        # The box's identity key within its image (spnet.md §4.1): the instance's
        # ``instance_id`` if the dataset gives one, else its position in the annotation
        # list. Every augmented view of the image gets the same keys, so two views of one
        # unlabelled person are the same identity (QC "other" pairs, CQ prototypes);
        # crops drop the ids together with their boxes.
        results['gt_instance_ids'] = np.array(
            [i.get('instance_id', k) for k, i in enumerate(instances)], np.int64)
        if self.with_query and 'queries' in results:
            queries = results['queries']
            boxes = np.array([q['bbox'] for q in queries], np.float32).reshape(-1, 4)
            results['query_bboxes'] = (HorizontalBoxes(boxes) if self.box_type else boxes)
            results['query_person_ids'] = np.array([q['person_id'] for q in queries],
                                                   np.int64)
            results['query_idx'] = np.array([q['query_idx'] for q in queries], np.int64)
        return results

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', with_query={self.with_query})'
