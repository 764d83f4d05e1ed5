# Copyright (c) mmpsearch contributors. All rights reserved.
"""Round trip: the metric inside ``Runner.test()`` == ``tools/eval_dump.py`` on the dump
that ``tools/test.py --out`` writes (the dump metric appended the same way).

A tiny in-test dataset (a ``BaseDataset`` whose metainfo carries a drawn
``search_protocol``) and a fake model (a ``BaseModel`` that returns the drawn
predictions of each image) stand in for the real ones.
"""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.dataset import BaseDataset
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.structures import InstanceData

from mmpsearch.evaluation.toy_data import random_case
from mmpsearch.registry import DATASETS, MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def _case(seed):
    return random_case(np.random.default_rng(seed), 'PRW', num_images=14, num_queries=6,
                       num_ids=4, dets_per_image=(0, 6))


@DATASETS.register_module(force=True)
class ToyPersonSearchTestSet(BaseDataset):
    """Test split of a drawn case: one item per image, queries in the data sample."""
    METAINFO = dict(classes=('person', ))

    def __init__(self, seed=0, **kwargs):
        self.case = _case(seed)
        super().__init__(metainfo=dict(search_protocol=self.case.search_protocol,
                                       num_person_ids=4), serialize_data=False, **kwargs)

    def load_data_list(self):
        sp = self.case.search_protocol
        return [dict(img_id=n, img_path=n, idx=i) for i, n in enumerate(sp['image_ids'])]

    def prepare_data(self, idx):
        sp = self.case.search_protocol
        info = self.get_data_info(idx)
        q = np.nonzero(np.asarray(sp['query_image_idx']) == info['idx'])[0]
        sample = DetDataSample(metainfo=dict(img_id=info['img_id'], img_path=info['img_path'],
                                             ori_shape=(64, 64), img_shape=(64, 64),
                                             scale_factor=(1., 1.)))
        sample.query_instances = InstanceData(
            query_idx=torch.as_tensor(q),
            bboxes=torch.as_tensor(sp['query_bboxes'][q], dtype=torch.float32))
        return dict(inputs=torch.zeros(3, 8, 8), data_samples=sample)


@MODELS.register_module(force=True)
class ToyPersonSearchModel(BaseModel):
    """Returns the drawn predictions of each image (deterministic)."""

    def __init__(self, seed=0):
        super().__init__()
        self.records = {r['img_id']: r for r in _case(seed).records()}
        self.dummy = torch.nn.Linear(1, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        assert mode == 'predict'
        for s in data_samples:
            r = self.records[s.img_id]
            s.pred_instances = InstanceData(
                bboxes=torch.as_tensor(r['det_bboxes']), scores=torch.as_tensor(r['det_scores']),
                labels=torch.zeros(len(r['det_scores']), dtype=torch.long),
                embeddings=torch.as_tensor(r['det_embeddings']))
            s.gt_embeddings = torch.as_tensor(r['gt_embeddings'])
            idx = s.query_instances.query_idx.numpy()
            assert (idx == r['query_idx']).all()
            s.query_embeddings = torch.as_tensor(r['query_embeddings'])
        return data_samples


def dataset_cfg(seed):
    return dict(type='ToyPersonSearchTestSet', seed=seed)


def load_tool():
    spec = importlib.util.spec_from_file_location('eval_dump_tool',
                                                  osp.join(ROOT, 'tools', 'eval_dump.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_config(path, seed, metric):
    Config(dict(default_scope='mmpsearch',
                test_dataloader=dict(dataset=dataset_cfg(seed)),
                test_evaluator=metric)).dump(path)


def test_metric_in_test_loop_equals_eval_dump(tmp_path):
    metric_cfg = dict(type='PersonSearchMetric', det_thresh=0.5)
    cfg = Config(dict(
        model=dict(type='ToyPersonSearchModel', seed=3),
        work_dir=str(tmp_path / 'work'),
        test_dataloader=dict(batch_size=4, num_workers=0, dataset=dataset_cfg(3),
                             sampler=dict(type='DefaultSampler', shuffle=False),
                             collate_fn=dict(type='pseudo_collate')),
        test_evaluator=metric_cfg, test_cfg=dict(type='TestLoop'),
        default_scope='mmpsearch', log_level='WARNING'))
    runner = Runner.from_cfg(cfg)
    dump = str(tmp_path / 'results.pkl')
    # what tools/test.py --out does, after the runner is built
    runner.test_evaluator.metrics.append(
        runner.build_evaluator(dict(type='DumpPersonSearchResults',
                                    out_file_path=dump)).metrics[0])
    in_loop = runner.test()
    assert 'standard/mAP' in in_loop and 'reid_multi_view/top1' in in_loop
    # the appended dump metric found the dataset metadata (fingerprints, annotations)
    from mmpsearch.evaluation import load_dump
    assert load_dump(dump)['data_fingerprint'] is not None

    tool = load_tool()
    cfg_path = str(tmp_path / 'cfg.py')
    write_config(cfg_path, 3, metric_cfg)
    offline = tool.main([cfg_path, dump])
    assert offline == in_loop
    # other protocols/options work from the same file
    only = tool.main([cfg_path, dump, '--protocol', 'multi_view', '--cbgm', '--no-det',
                      '--out-json', str(tmp_path / 'm.json')])
    assert set(only) >= {'multi_view/mAP', 'mAP'} and 'det/AP' not in only
    assert osp.isfile(tmp_path / 'm.json')


def test_eval_dump_refuses_a_dump_of_another_split(tmp_path):
    from mmpsearch.evaluation import make_dump, write_dump
    case = _case(3)
    dump = str(tmp_path / 'results.pkl')
    write_dump(dump, make_dump(case.records(), case.search_protocol))
    cfg_path = str(tmp_path / 'cfg.py')
    write_config(cfg_path, 4, dict(type='PersonSearchMetric'))
    tool = load_tool()
    with pytest.raises(ValueError, match='different PRW test split'):
        tool.main([cfg_path, dump])
    write_config(cfg_path, 3, dict(type='PersonSearchMetric'))
    with pytest.raises(ValueError, match='cannot be evaluated at a threshold'):
        write_dump(dump, make_dump(case.records(), case.search_protocol, score_thr=0.7))
        tool.main([cfg_path, dump])
