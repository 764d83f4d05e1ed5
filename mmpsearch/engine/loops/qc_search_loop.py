# Copyright (c) mmpsearch contributors. All rights reserved.
"""Query-centric (QC) search at test and validation time (spnet.md §6.2).

QC inference detects each gallery image once per query, conditioned on that query's loc
embedding, so a test run has two passes over the test split:

1. **Queries.** Every image holding a query is embedded once; the loc embedding of each
   query box (``SPNet.predict_query_loc_embeddings``) is kept. Under DDP every rank
   embeds its shard and the embeddings are all-gathered, so each rank holds all queries.
2. **Gallery.** For every gallery image, the anchor head runs once and then all queries
   the protocols assign to that image, batched (``SPNet.predict`` with
   ``qc_query_embeddings``): per query the 100 nearest anchors, the stage-0 heads, score
   > 0.5, NMS and its cap per query, the cascade, re-id embeddings. Detections carry the
   query row they were made for (``pred_instances.query_idx``) and go to the evaluator
   like OC detections; ``PersonSearchMetric`` scores such records per query
   (``functional.search_qc``).

Which queries search an image comes from the evaluated protocols of the test split's
``search_protocol``: a listed (CUHK-SYSU) query searches its listed images, an
``all_but_query`` (PRW) query every image but its own (other cameras only for a
cross-camera protocol). Images are sharded across ranks by the dataloader's distributed
sampler, as in OC testing.
"""
import time
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_world_size
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import TestLoop, ValLoop, autocast

from mmpsearch.registry import LOOPS

__all__ = ['QueryAssignment', 'QCTestLoop', 'QCValLoop']


class QueryAssignment:
    """Which query rows search each test image, from the evaluated protocols.

    Args:
        search_protocol (dict): the test split's ``search_protocol``.
        protocols (Sequence[str], optional): protocols whose (query, image) pairs are
            searched; all of the split's when None.
        exclude_query_image (bool): drop the query's own image from listed galleries
            (``PersonSearchMetric.exclude_query_image``).
    """

    def __init__(self, search_protocol: dict, protocols: Optional[Sequence[str]] = None,
                 exclude_query_image: bool = False):
        from mmpsearch.evaluation.protocols import build_search_galleries
        sp = search_protocol
        self.num_images = len(sp['image_ids'])
        self.index = {name: i for i, name in enumerate(sp['image_ids'])}
        self.query_image = np.asarray(sp['query_image_idx'], np.int64)
        self.cams = np.asarray(sp['image_cams'], np.int64)
        galleries = build_search_galleries(sp, protocols,
                                           exclude_query_image=exclude_query_image)
        self.protocols = list(galleries)
        listed_rows, listed_imgs = [], []
        self.open_rows = []  # (rows, cross_camera) of all_but_query protocols
        for g in galleries.values():
            if g.kind == 'listed':
                listed_rows.append(np.repeat(g.query_rows, np.diff(g.gal_offsets)))
                listed_imgs.append(g.gal_images.astype(np.int64))
            else:
                self.open_rows.append((np.asarray(g.query_rows, np.int64), g.cross_camera))
        rows = np.concatenate(listed_rows) if listed_rows else np.zeros(0, np.int64)
        imgs = np.concatenate(listed_imgs) if listed_imgs else np.zeros(0, np.int64)
        order = np.lexsort((rows, imgs))
        self.listed_rows = rows[order]
        self.listed_offsets = np.r_[0, np.cumsum(np.bincount(imgs, minlength=self.num_images))]
        self.used_rows = np.unique(np.concatenate(
            [rows] + [r for r, _ in self.open_rows]))

    def rows_for(self, image: int) -> np.ndarray:
        """Sorted distinct query rows that search image ``image``."""
        parts = [self.listed_rows[self.listed_offsets[image]:self.listed_offsets[image + 1]]]
        for rows, cross in self.open_rows:
            own = self.query_image[rows]
            keep = own != image
            if cross:
                keep &= self.cams[own] != self.cams[image]
            parts.append(rows[keep])
        return np.unique(np.concatenate(parts))

    def num_pairs(self) -> int:
        """(query, image) pairs searched over the whole split."""
        return int(sum(len(self.rows_for(i)) for i in range(self.num_images)))


class _QCSearchMixin:
    """The two passes of QC search, shared by the test and validation loops."""

    mode = 'test'

    def __init__(self, runner, dataloader, evaluator, fp16: bool = False,
                 protocols: Optional[Sequence[str]] = None,
                 exclude_query_image: Optional[bool] = None):
        super().__init__(runner, dataloader, evaluator, fp16)
        self.qc_protocols = None if protocols is None else list(protocols)
        self.qc_exclude_query_image = exclude_query_image

    def run(self) -> dict:
        return self._run_qc()

    def _search_protocol(self) -> dict:
        meta = getattr(self.dataloader.dataset, 'metainfo', None) or {}
        sp = meta.get('search_protocol')
        if sp is None:
            raise KeyError(f'{type(self).__name__}: the {self.mode} dataset has no '
                           'search_protocol in its metainfo (docs/data_contract.md §3); QC '
                           'search runs on a person-search test split')
        return sp

    def _metric_protocols(self):
        """Protocols and query-image rule of the evaluator's person-search metric."""
        for metric in getattr(self.evaluator, 'metrics', []):
            if hasattr(metric, 'search_protocol') and hasattr(metric, 'protocols'):
                return metric.protocols, getattr(metric, 'exclude_query_image', False)
        return None, False

    def _model(self):
        model = self.runner.model
        model = model.module if is_model_wrapper(model) else model
        if not hasattr(model, 'predict_query_loc_embeddings'):
            raise TypeError(f'{type(self).__name__} needs a model with query-centric '
                            f'inference (SPNet); got {type(model).__name__}')
        return model

    def _plan(self) -> QueryAssignment:
        """The (query, image) pairs to search; tells the metrics which protocols those
        pairs cover, so no protocol is scored on pairs that were never searched."""
        protocols, exclude = self._metric_protocols()
        if self.qc_protocols is not None:
            protocols = self.qc_protocols
        if self.qc_exclude_query_image is not None:
            exclude = self.qc_exclude_query_image
        plan = QueryAssignment(self._search_protocol(), protocols, exclude)
        for metric in getattr(self.evaluator, 'metrics', []):
            if hasattr(metric, 'protocols') and hasattr(metric, 'search_protocol'):
                if metric.protocols is None:
                    metric.protocols = list(plan.protocols)
                extra = [p for p in metric.protocols if p not in plan.protocols]
                if extra:
                    raise ValueError(f'{type(self).__name__} searches the pairs of '
                                     f'{plan.protocols}, but {type(metric).__name__} '
                                     f'evaluates {extra} too: add them to the loop\'s '
                                     'protocols or drop them from the metric')
            if hasattr(metric, 'qc_searched_protocols'):
                metric.qc_searched_protocols = list(plan.protocols)
        return plan

    @torch.no_grad()
    def _embed_queries(self, model, plan: QueryAssignment) -> torch.Tensor:
        """Pass 1: loc embeddings (Q, d) of every query row (NaN rows: not embedded)."""
        rows, embeds = [], []
        for data_batch in self.dataloader:
            samples = data_batch['data_samples']
            if not any(len(s.query_instances) for s in samples):
                continue
            data = model.data_preprocessor(data_batch, False)
            with autocast(enabled=self.fp16):
                out = model.predict_query_loc_embeddings(data['inputs'],
                                                         data['data_samples'])
            for s, e in zip(data['data_samples'], out):
                rows.append(s.query_instances.query_idx.cpu().numpy().astype(np.int64))
                embeds.append(e.float().cpu().numpy())
        parts = [(rows, embeds)]
        if get_world_size() > 1:
            parts = all_gather_object((rows, embeds))
        n_q = len(plan.query_image)
        dim = next((e.shape[1] for _, es in parts for e in es if e.ndim == 2), 0)
        table = np.full((n_q, dim), np.nan, np.float32)
        for rs, es in parts:
            for r, e in zip(rs, es):
                if len(r):
                    table[r] = e.reshape(len(r), dim)
        missing = plan.used_rows[np.isnan(table[plan.used_rows]).any(1)] if dim else \
            plan.used_rows
        if len(missing):
            raise ValueError(f'{type(self).__name__}: {len(missing)} queries were not '
                             f'embedded (e.g. query {int(missing[0])}); the {self.mode} '
                             'pipeline must load every query box (query_instances)')
        return torch.from_numpy(table)

    def _attach_queries(self, data_batch: dict, plan: QueryAssignment,
                        query_loc: torch.Tensor) -> int:
        """Give each sample the queries that search it; returns the pair count."""
        pairs = 0
        for sample in data_batch['data_samples']:
            img_id = sample.metainfo.get('img_id')
            if img_id not in plan.index:
                raise KeyError(f'{type(self).__name__}: image {img_id!r} is not in the '
                               "split's search_protocol")
            rows = plan.rows_for(plan.index[img_id])
            sample.qc_query_embeddings = query_loc[torch.from_numpy(rows)]
            sample.qc_query_idx = torch.from_numpy(rows)
            pairs += len(rows)
        return pairs

    def _run_qc(self) -> Dict[str, float]:
        runner, mode = self.runner, self.mode
        runner.call_hook(f'before_{mode}')
        runner.call_hook(f'before_{mode}_epoch')
        runner.model.eval()
        getattr(self, f'{mode}_loss').clear()
        model = self._model()
        plan = self._plan()
        start = time.perf_counter()
        query_loc = self._embed_queries(model, plan)
        print_log(f'QC search: {len(plan.used_rows)} queries embedded in '
                  f'{time.perf_counter() - start:.1f} s; protocols {plan.protocols}',
                  logger='current')
        saved_path = model.test_path
        model.test_path = 'qc'
        pairs, start = 0, time.perf_counter()
        try:
            for idx, data_batch in enumerate(self.dataloader):
                pairs += self._attach_queries(data_batch, plan, query_loc)
                self.run_iter(idx, data_batch)
        finally:
            model.test_path = saved_path
        print_log(f'QC search: {pairs} (query, image) pairs searched in '
                  f'{time.perf_counter() - start:.1f} s on this rank', logger='current')
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        runner.call_hook(f'after_{mode}_epoch', metrics=metrics)
        runner.call_hook(f'after_{mode}')
        return metrics


@LOOPS.register_module()
class QCTestLoop(_QCSearchMixin, TestLoop):
    """``test_cfg = dict(type='QCTestLoop')``: query-centric search of the test split.

    Args:
        runner (Runner): the runner.
        dataloader (DataLoader | dict): the test split (with query boxes).
        evaluator (Evaluator | dict | list): ``PersonSearchMetric`` (and optionally the
            results dump); QC records are scored per query.
        fp16 (bool): autocast during both passes.
        protocols (Sequence[str], optional): protocols whose (query, image) pairs are
            searched; default: the metric's ``protocols`` (all of the split's when that
            is None). Each pair costs one head evaluation: restrict it on CUHK-SYSU
            (``['G100']``) unless the larger galleries are wanted.
        exclude_query_image (bool, optional): default: the metric's setting.
    """
    mode = 'test'


@LOOPS.register_module()
class QCValLoop(_QCSearchMixin, ValLoop):
    """``val_cfg = dict(type='QCValLoop')``: QC search as validation (pre-training and
    QC fine-tuning monitor this way). Arguments as :class:`QCTestLoop`."""
    mode = 'val'
