# Copyright (c) mmpsearch contributors. All rights reserved.
"""``DumpPersonSearchResults``: write everything a later evaluation needs to a file.

``tools/test.py CONFIG CKPT --out results.pkl`` appends this metric to the test
evaluator. Per image it keeps the detections (boxes, scores, embeddings), the embeddings
of the annotated boxes and of the queries (``records.py``); the file also carries the
dataset name, the protocol fingerprints, each image's annotated boxes and person ids and
a format version (docs/results_format.md). ``tools/eval_dump.py`` re-evaluates it for any
protocol without the model.
"""
import logging
from typing import Any, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmpsearch.registry import METRICS
from ..dump import make_dump, write_dump
from ..records import sample_to_record


@METRICS.register_module()
class DumpPersonSearchResults(BaseMetric):
    """Dump per-image person-search predictions to a pickle file.

    Args:
        out_file_path (str): output file, ``.pkl`` or ``.pickle``.
        score_thr (float): keep detections with ``score >= score_thr`` (0: all the model
            returns; a dump can be evaluated at any ``det_thresh >= score_thr``).
        collect_device (str): see ``BaseMetric``.
        collect_dir (str, optional): see ``BaseMetric``.
    """
    default_prefix = ''

    def __init__(self,
                 out_file_path: str,
                 score_thr: float = 0.0,
                 collect_device: str = 'cpu',
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, collect_dir=collect_dir)
        if not str(out_file_path).endswith(('.pkl', '.pickle')):
            raise ValueError(f'the dump must be a .pkl/.pickle file, got {out_file_path!r}')
        self.out_file_path = str(out_file_path)
        self.score_thr = float(score_thr)
        # set by QCTestLoop: the protocols whose (query, image) pairs were searched
        self.qc_searched_protocols = None

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for sample in data_samples:
            self.results.append(sample_to_record(sample, score_thr=self.score_thr))

    def _search_protocol(self):
        meta = self.dataset_meta
        if meta is None:
            # tools/test.py appends this metric after the test loop has handed the
            # dataset metainfo to the evaluator; the loop also gave it to the visualizer
            try:
                from mmengine.visualization import Visualizer
                meta = Visualizer.get_current_instance().dataset_meta
            except Exception:  # no visualizer instance
                meta = None
        return (meta or {}).get('search_protocol')

    def compute_metrics(self, results: list) -> dict:
        sp = self._search_protocol()
        if sp is None:
            print_log('DumpPersonSearchResults: no search_protocol in the dataset '
                      'metadata; the dump carries no dataset fingerprint',
                      logger='current', level=logging.WARNING)
        write_dump(self.out_file_path, make_dump(results, sp, self.score_thr,
                                                 self.qc_searched_protocols))
        print_log(f'person-search results dumped to {self.out_file_path}', logger='current')
        return {}
