# Copyright (c) mmpsearch contributors. All rights reserved.
"""``PersonSearchMetric``: the standard CUHK-SYSU / PRW person-search evaluation.

``process`` keeps one record per image (``records.sample_to_record``) and nothing else,
so the metric is correct under distributed testing (records come back in any order,
padding repeats included) and offline (``data_batch`` is None). ``compute_metrics`` takes
all ground truth from ``dataset_meta['search_protocol']`` (docs/data_contract.md §3) and
runs the vectorised protocol maths of ``evaluation.functional``.

Output keys (fractions in [0, 1]; see docs/evaluation.md):

* ``<protocol>/mAP``, ``/top1``, ``/top5``, ``/top10``: search with the detections;
  ``/no_det_queries``: queries whose gallery has no kept detection at all;
  ``/no_gt_queries``: queries whose identity is in no gallery image (``count_gt == 0``);
* ``reid_<protocol>/mAP``, ``/top1``, ``/top5``, ``/top10``: the same protocol with the
  annotated boxes as gallery ("GT mAP", oimnetpp.md §6.5), when the model embeds them;
* ``det/AP``, ``det/recall``: detection AP@0.5 × recall and recall (oimnetpp.md §6.4);
* query-centric (QC) records (``det_query_idx``, spnet.md §6.2; written by
  :class:`~mmpsearch.engine.loops.QCTestLoop`): the search keys are computed per query on
  the detections made for it (``functional.search_qc``), and ``qc_det/AP``,
  ``qc_det/recall`` replace ``det/``: each (query, gallery image) pair of the main
  protocol is scored against the query person's box alone;
* ``mAP``, ``top1``: copies of the main protocol's search numbers (``G100`` on
  CUHK-SYSU, ``standard`` on PRW), the key for ``save_best``.
"""
import logging
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmpsearch.registry import METRICS
from ..functional import (TIE_ORDERS, TOPK, CBGMOptions, DetectionSet, QuerySet,
                          evaluate_detection, evaluate_search_sets)
from ..functional.search_qc import evaluate_detection_qc, evaluate_search_qc
from ..protocols import DUPLICATE_MODES, build_search_galleries
from ..records import assemble_predictions, check_finite, sample_to_record

NO_GT_MODES = ('zero', 'skip', 'error')
CBGM_DEFAULTS = {'PRW': (30, 4)}  # SeqNet's eval_search_prw; CUHK-SYSU: (10, 3)
MAIN_PROTOCOLS = ('G100', 'standard')


@METRICS.register_module()
class PersonSearchMetric(BaseMetric):
    """Search mAP/top-k, GT-box re-id and detection AP of a person-search model.

    Args:
        protocols (Sequence[str], optional): protocols of ``search_protocol`` to
            evaluate; all when None.
        det_thresh (float): detections with ``score >= det_thresh`` take part in the
            search (0.5 in every released protocol).
        cbgm (bool): re-rank with context bipartite graph matching (off in the papers).
        cbgm_k1 (int, optional): CBGM images of the k1 best detections (default 10,
            30 on PRW, as SeqNet).
        cbgm_k2 (int, optional): CBGM context size incl. the query (default 3, 4 on PRW).
        cbgm_context_iou (float): query-image detections overlapping the query box more
            than this are not context (the released NMS IoU 0.4).
        gt_reid (bool): also evaluate with the annotated boxes (``reid_`` keys).
        detection (bool): also report detection AP and recall (``det/`` keys).
        det_iou_thresh (float): IoU of a detection match (0.5).
        det_eval_thresh (float, optional): score threshold of the detection AP
            (default ``det_thresh``; the released engines pass 0.01 to a model that
            already dropped scores <= 0.5).
        det_labeled_only (bool): detection recall/AP against labelled persons only.
        tie_order (str): ``'reversed'``: of equal similarities the later-appended
            detection ranks first in top-k (released ``argsort()[::-1]``); ``'stable'``.
        duplicate_gallery (str): ``'released'`` or ``'dedup'`` (protocols.py).
        exclude_query_image (bool): drop the query's own image from listed galleries
            (released: kept).
        no_gt_query (str): a query whose identity is in no gallery image (the released
            OIMNet++ code divides by zero): ``'zero'`` scores it AP = top-k = 0 (SPNet's
            rule), ``'skip'`` leaves it out of the means, ``'error'`` raises.
        main_protocol (str, optional): protocol copied to ``mAP``/``top1``.
        chunk_size (int): queries per similarity GEMM.
        num_buckets (int): histogram resolution of the rank counting (speed only).
        collect_device (str): see ``BaseMetric``.
        prefix (str, optional): prefix of the output keys (none by default).
        collect_dir (str, optional): see ``BaseMetric``.
    """
    default_prefix = ''

    def __init__(self,
                 protocols: Optional[Sequence[str]] = None,
                 det_thresh: float = 0.5,
                 cbgm: bool = False,
                 cbgm_k1: Optional[int] = None,
                 cbgm_k2: Optional[int] = None,
                 cbgm_context_iou: float = 0.4,
                 gt_reid: bool = True,
                 detection: bool = True,
                 det_iou_thresh: float = 0.5,
                 det_eval_thresh: Optional[float] = None,
                 det_labeled_only: bool = False,
                 tie_order: str = 'reversed',
                 duplicate_gallery: str = 'released',
                 exclude_query_image: bool = False,
                 no_gt_query: str = 'zero',
                 main_protocol: Optional[str] = None,
                 chunk_size: int = 128,
                 num_buckets: int = 16384,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix,
                         collect_dir=collect_dir)
        for name, value, allowed in (('tie_order', tie_order, TIE_ORDERS),
                                     ('duplicate_gallery', duplicate_gallery,
                                      DUPLICATE_MODES), ('no_gt_query', no_gt_query,
                                                         NO_GT_MODES)):
            if value not in allowed:
                raise ValueError(f'{name} must be one of {allowed}, got {value!r}')
        self.protocols = None if protocols is None else list(protocols)
        self.det_thresh = float(det_thresh)
        self.cbgm = bool(cbgm)
        self.cbgm_k1, self.cbgm_k2 = cbgm_k1, cbgm_k2
        self.cbgm_context_iou = float(cbgm_context_iou)
        self.gt_reid = gt_reid
        self.detection = detection
        self.det_iou_thresh = float(det_iou_thresh)
        self.det_eval_thresh = self.det_thresh if det_eval_thresh is None else float(
            det_eval_thresh)
        self.det_labeled_only = det_labeled_only
        self.tie_order = tie_order
        self.duplicate_gallery = duplicate_gallery
        self.exclude_query_image = exclude_query_image
        self.no_gt_query = no_gt_query
        self.main_protocol = main_protocol
        self.chunk_size = chunk_size
        self.num_buckets = num_buckets
        # QC records only: the protocols whose (query, image) pairs were searched (set by
        # QCTestLoop / read from a dump); a protocol outside it cannot be scored
        self.qc_searched_protocols: Optional[List[str]] = None

    # ------------------------------------------------------------------ process
    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep one record per image (``data_batch`` is not used)."""
        thr = min(self.det_thresh, self.det_eval_thresh)
        for sample in data_samples:
            self.results.append(sample_to_record(sample, score_thr=thr))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        return self.evaluate_records(results)

    # ------------------------------------------------------------------ evaluation
    @property
    def search_protocol(self) -> dict:
        meta = self.dataset_meta or {}
        sp = meta.get('search_protocol')
        if sp is None:
            raise KeyError(f'{type(self).__name__} needs dataset_meta["search_protocol"] '
                           '(docs/data_contract.md §3): evaluate a person-search test '
                           'split, whose metainfo carries it')
        return sp

    def cbgm_options(self, dataset: str) -> Optional[CBGMOptions]:
        if not self.cbgm:
            return None
        k1, k2 = CBGM_DEFAULTS.get(dataset, (10, 3))
        return CBGMOptions(k1=self.cbgm_k1 or k1, k2=self.cbgm_k2 or k2,
                           context_iou=self.cbgm_context_iou)

    def evaluate_records(self,
                         records: Sequence[dict],
                         source: str = '',
                         progress: Optional[Callable[[int, int], None]] = None
                         ) -> Dict[str, float]:
        """Evaluate per-image records (from ``process`` or a results dump).

        Args:
            records (Sequence[dict]): one record per image.
            source (str): file the records come from, for error messages.
            progress (Callable[[int, int], None], optional): called as
                ``progress(queries_done, queries_total)`` during the search passes.

        Returns:
            dict[str, float]: the metrics (keys in the module docstring).
        """
        sp = self.search_protocol
        preds = assemble_predictions(records, sp, source)
        ids = preds.image_ids
        galleries = build_search_galleries(sp, self.protocols, self.duplicate_gallery,
                                           self.exclude_query_image)
        gal_list = list(galleries.values())
        if not gal_list:
            raise ValueError('PersonSearchMetric: no protocol to evaluate (protocols=[])')
        used = np.unique(np.concatenate([g.query_rows for g in gal_list]))
        q_img = np.asarray(sp['query_image_idx'], np.int64)
        if not preds.query_known[used].all():
            q = int(used[~preds.query_known[used]][0])
            raise ValueError(f'no embedding for query {q} (image {ids[q_img[q]]!r}); the '
                             'model must embed every query box in query_instances')
        check_finite('query embeddings', preds.query_feats[used], q_img[used], ids)
        dets = preds.dets.above(self.det_thresh)
        check_finite('detection embeddings', dets.feats, dets.image_index(), ids)
        check_finite('detection boxes', dets.bboxes, dets.image_index(), ids)
        check_finite('detection scores', preds.dets.scores, preds.dets.image_index(), ids)
        queries = QuerySet(preds.query_feats, q_img, sp['query_bboxes'])
        cams = np.asarray(sp['image_cams'], np.int64)
        gt_dets = None
        if self.gt_reid and preds.gt_feats is not None:
            gt_off = np.asarray(sp['gt_offsets'], np.int64)
            gt_dets = DetectionSet(gt_off, sp['gt_bboxes'], np.ones(gt_off[-1]),
                                   preds.gt_feats)
            check_finite('gt embeddings', gt_dets.feats, gt_dets.image_index(), ids)
        elif self.gt_reid:
            print_log('PersonSearchMetric: the predictions carry no gt_embeddings, so the '
                      'GT-box (reid_*) evaluation is skipped', logger='current',
                      level=logging.WARNING)
        total = len(used) * (1 + (gt_dets is not None))
        state = dict(done=0)

        def tick(n):
            state['done'] += n
            if progress is not None:
                progress(state['done'], total)

        cbgm = self.cbgm_options(sp.get('dataset', ''))
        qc = preds.det_query is not None
        if qc:
            self._check_qc(list(galleries), cbgm, source)
        if qc:
            # each query is ranked on the detections made for it (spnet.md §6.2)
            det_query = preds.det_query[preds.dets.scores >= self.det_thresh]
            results = {'': evaluate_search_qc(queries, dets, det_query, gal_list, cams,
                                              self.tie_order, self.num_buckets, tick)}
            sets = {} if gt_dets is None else {'reid_': gt_dets}
        else:
            sets = {'': dets} if gt_dets is None else {'': dets, 'reid_': gt_dets}
            results = {}
        if sets:
            results.update(evaluate_search_sets(
                queries, sets, gal_list, image_cams=cams, tie_order=self.tie_order,
                cbgm=cbgm, chunk_size=self.chunk_size, num_buckets=self.num_buckets,
                progress=tick))
        out: Dict[str, float] = {}
        search = results['']
        for name, res in search.items():
            out.update(self._summary(name, res, ''))
        for name, res in results.get('reid_', {}).items():
            out.update(self._summary(name, res, 'reid_', counts=False))
        main = self.main_protocol or next((p for p in MAIN_PROTOCOLS if p in search),
                                          next(iter(search)))
        if self.detection and qc:
            if main not in galleries:
                raise KeyError(f'main_protocol {main!r} is not evaluated ({list(search)})')
            det = evaluate_detection_qc(galleries[main], preds.dets, preds.det_query,
                                        q_img, cams, self.det_eval_thresh,
                                        self.det_iou_thresh)
            out['qc_det/AP'] = det['ap']
            out['qc_det/recall'] = det['recall']
        elif self.detection:
            keep = (np.asarray(sp['gt_person_ids']) >= 0) if self.det_labeled_only else None
            det = evaluate_detection(sp['gt_offsets'], sp['gt_bboxes'], preds.dets,
                                     self.det_eval_thresh, self.det_iou_thresh, keep)
            out['det/AP'] = det['ap']
            out['det/recall'] = det['recall']
        if main not in search:
            raise KeyError(f'main_protocol {main!r} is not evaluated ({list(search)})')
        out['mAP'] = out[f'{main}/mAP']
        out['top1'] = out[f'{main}/top1']
        self._log(out, list(search))
        return out

    def _check_qc(self, names: List[str], cbgm, source: str) -> None:
        """QC records can be scored only on the protocols that were searched."""
        where = f' in {source}' if source else ''
        if cbgm is not None:
            raise ValueError('CBGM re-ranking is not defined for query-centric (QC) '
                             'predictions; evaluate them with cbgm=False')
        searched = self.qc_searched_protocols
        if searched is None:
            raise ValueError(f'the predictions{where} are query-centric (det_query_idx) but '
                             'the searched protocols are unknown: evaluate them through '
                             'QCTestLoop or a QC results dump')
        missing = [n for n in names if n not in searched]
        if missing:
            raise ValueError(f'the query-centric predictions{where} searched the (query, '
                             f'image) pairs of {list(searched)} only; protocols {missing} '
                             'need pairs that were never searched (evaluate '
                             f'--protocol {" ".join(searched)}, or search them too)')

    def _summary(self, name, res, prefix, counts=True) -> Dict[str, float]:
        no_gt = res.count_gt == 0
        keep = np.ones(len(res.ap), bool)
        if no_gt.any() and prefix == '':
            g = np.nonzero(no_gt)[0]
            msg = (f'protocol {name}: {len(g)} queries have no gallery image with their '
                   f'identity (count_gt == 0; protocol rows {g[:5].tolist()}...)')
            if self.no_gt_query == 'error':
                raise ValueError(msg + "; set no_gt_query='zero' or 'skip' to evaluate")
            print_log(msg + (' and score 0' if self.no_gt_query == 'zero' else
                             ' and are left out of the means'), logger='current',
                      level=logging.WARNING)
        if self.no_gt_query == 'skip':
            keep = ~no_gt
        n = max(int(keep.sum()), 1)
        out = {f'{prefix}{name}/mAP': float(res.ap[keep].sum() / n)}
        for j, k in enumerate(TOPK):
            out[f'{prefix}{name}/top{k}'] = float(res.topk[keep, j].sum() / n)
        if counts:
            out[f'{name}/no_det_queries'] = int((res.num_items == 0).sum())
            out[f'{name}/no_gt_queries'] = int(no_gt.sum())
        return out

    @staticmethod
    def _log(out: Dict[str, float], names: List[str]) -> None:
        rows = ['protocol      mAP   top1   top5  top10 | reid mAP  top1']
        for n in names:
            r = [out[f'{n}/{k}'] for k in ('mAP', 'top1', 'top5', 'top10')]
            g = [out.get(f'reid_{n}/{k}', float('nan')) for k in ('mAP', 'top1')]
            rows.append(f'{n:<11s} ' + ' '.join(f'{100 * v:6.2f}' for v in r) + ' | ' +
                        ' '.join(f'{100 * v:6.2f}' for v in g))
        if 'det/AP' in out:
            rows.append(f'detection AP {100 * out["det/AP"]:.2f}  recall '
                        f'{100 * out["det/recall"]:.2f}')
        qc = 'qc_det/AP' in out
        if qc:
            rows.append(f'QC detection (query person per pair) AP '
                        f'{100 * out["qc_det/AP"]:.2f}  recall '
                        f'{100 * out["qc_det/recall"]:.2f}')
        title = 'query-centric person search' if qc else 'person search'
        print_log(f'{title} (%):\n' + '\n'.join(rows), logger='current')
