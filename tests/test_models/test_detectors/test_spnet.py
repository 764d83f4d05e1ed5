# Copyright (c) mmpsearch contributors. All rights reserved.
"""SPNet end to end on hand-made samples: OC/QC training steps, OC/QC inference, and the
SPNet-L configuration (ConvNeXt-B, cascade 2, separate heads, d_r 2048) on the CPU."""
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmpsearch.models.detectors import SPNet
from mmpsearch.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
BASE_S = osp.join(ROOT, 'configs/_base_/models/spnet-s_convnext-t.py')
BASE_L = osp.join(ROOT, 'configs/_base_/models/spnet-l_convnext-b.py')


def _small_cfg(path='oc', cascade=0, sep=False):
    cfg = Config.fromfile(BASE_S).model
    cfg.backbone.update(arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
                        init_cfg=None)
    cfg.neck.update(in_channels=[16, 32, 64], out_channels=32)
    cfg.bbox_head.in_channels = 32
    cfg.roi_head.roi_extractor.out_channels = 32
    cfg.roi_head.loss_reid.update(num_person_ids=6, queue_size=8)
    cfg.cascade.num_stages = cascade
    if sep:
        cfg.roi_head.update(num_loc_heads=max(1, cascade), reid_dim=64)
        cfg.roi_head.loss_reid.feat_dim = 64
    cfg.train_cfg.path = path
    cfg.train_cfg.roi_head.max_per_group = 16 if path == 'qc' else None
    return cfg


def _sample(img_id, size=128, scale=1.0, pids=(1, 2), labels=(0, -1), known=(True, False)):
    boxes = torch.tensor([[10., 10., 50., 90.], [60., 20., 100., 110.]])[:len(pids)]
    boxes = boxes * size / 128
    ds = DetDataSample(metainfo=dict(img_id=img_id, img_shape=(size, size),
                                     ori_shape=(int(size / scale), int(size / scale)),
                                     scale_factor=(scale, scale)))
    ds.gt_instances = InstanceData(bboxes=boxes, labels=torch.zeros(len(pids), dtype=torch.long),
                                   person_ids=torch.tensor(pids),
                                   person_labels=torch.tensor(labels),
                                   known=torch.tensor(known))
    ds.query_instances = InstanceData(bboxes=boxes[:1], person_ids=torch.tensor(pids[:1]),
                                      query_idx=torch.tensor([0]))
    return ds


def _batch(model, samples, size=128):
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8)
              for _ in samples]
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=True)


def _build(cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _train_step(model, samples):
    model.train()
    data = _batch(model, samples)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    return losses


def test_oc_training_step_and_stage4_sync():
    torch.manual_seed(0)
    model = _build(_small_cfg())
    assert isinstance(model, SPNet) and model.cascade is None
    for key, value in model.backbone.stage4_state_dict().items():
        assert torch.equal(model.roi_head.reid_stage.stage.state_dict()[key], value)
    losses = _train_step(model, [_sample('a'), _sample('b', pids=(3, 4), labels=(1, 2),
                                                       known=(True, True))])
    assert set(losses) == {'loss_anchor_cls', 'loss_bbox0', 'loss_reid'}
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad


def test_qc_training_step_uses_repeat_views():
    torch.manual_seed(0)
    model = _build(_small_cfg(path='qc'))
    samples = [_sample('a'), _sample('a'), _sample('b', pids=(3, 4)), _sample('b', pids=(3, 4))]
    losses = _train_step(model, samples)
    assert set(losses) == {'loss_anchor_cls', 'loss_bbox0', 'loss_reid'}
    # The OC bridge is not used on the QC path.
    assert model.bbox_head.bridge.linear.weight.grad is None


def test_oc_cascade_sep_training_step():
    torch.manual_seed(0)
    model = _build(_small_cfg(cascade=2, sep=True))
    losses = _train_step(model, [_sample('a'), _sample('b')])
    assert {'loss_cls1', 'loss_bbox1', 'loss_cls2', 'loss_bbox2'} <= set(losses)
    assert len(model.roi_head.stage_copies()) == 3


def test_oc_predict_follows_data_contract():
    torch.manual_seed(0)
    model = _build(_small_cfg(cascade=2, sep=True))
    model.eval()
    # Force detections: make the bridge predict the anchors' own embedding for a few.
    sample = _sample('a', scale=0.5)
    data = _batch(model, [sample])
    with torch.no_grad():
        model.bbox_head.test_cfg['score_thr'] = -1.0  # keep the top-300 candidates
        out = model(**data, mode='predict')[0]
    pred = out.pred_instances
    assert set(pred.keys()) >= {'bboxes', 'scores', 'labels', 'embeddings'}
    assert 0 < len(pred) <= 300 and pred.embeddings.shape[1] == 64
    assert torch.allclose(pred.embeddings.norm(dim=1), torch.ones(len(pred)), atol=1e-5)
    # Boxes are in original pixels: the 128 px input was scaled by 0.5 from 256 px.
    assert float(pred.bboxes.max()) > 128 and float(pred.bboxes.max()) <= 256
    assert out.gt_embeddings.shape == (2, 64) and out.query_embeddings.shape == (1, 64)
    assert torch.allclose(out.query_embeddings[0], out.gt_embeddings[0], atol=1e-5)


def test_qc_predict():
    torch.manual_seed(0)
    cfg = _small_cfg()
    cfg.test_cfg.path = 'qc'
    model = _build(cfg)
    model.eval()
    query = _batch(model, [_sample('q')])
    loc = model.predict_query_loc_embeddings(**query)
    assert loc[0].shape == (1, 128)
    gallery = _sample('g')
    gallery.qc_query_embeddings = torch.cat([loc[0], loc[0]])
    data = _batch(model, [gallery])
    model.bbox_head.test_cfg['score_thr'] = -1.0
    with torch.no_grad():
        out = model(**data, mode='predict')[0]
    assert set(out.pred_instances.query_inds.tolist()) <= {0, 1}
    with pytest.raises(KeyError, match='qc_query_embeddings'):
        model(**_batch(model, [_sample('x')]), mode='predict')


def test_config_errors():
    cfg = _small_cfg()
    cfg.train_cfg.path = 'both'
    with pytest.raises(ValueError, match="'oc' or 'qc'"):
        MODELS.build(cfg)
    cfg = _small_cfg(path='qc', cascade=2)
    with pytest.raises(ValueError, match='cascade'):
        MODELS.build(cfg)


def test_spnet_l_builds_trains_and_predicts_on_cpu():
    torch.manual_seed(0)
    cfg = Config.fromfile(BASE_L).model
    cfg.backbone.init_cfg = None  # nothing downloads in tests
    cfg.roi_head.loss_reid.update(num_person_ids=6, queue_size=8)
    # Fewer RoIs than the released 128 per image keep the three ConvNeXt-B stage-4 copies
    # affordable on a CPU; the architecture is unchanged.
    cfg.train_cfg.bbox_head.sampler.num = 4
    cfg.train_cfg.cascade.sampler.num = 4
    cfg.test_cfg.bbox_head.update(topk=4, score_thr=-1.0)
    model = _build(cfg)
    assert model.backbone.channels == [128, 256, 512, 1024]
    assert model.cascade.num_stages == 2 and not model.roi_head.shared
    assert model.roi_head.reid_dim == 2048
    losses = _train_step(model, [_sample('a', size=64), _sample('b', size=64)])
    assert {'loss_cls1', 'loss_cls2', 'loss_reid'} <= set(losses)
    model.eval()
    with torch.no_grad():
        out = model(**_batch(model, [_sample('a', size=64)], size=64), mode='predict')[0]
    assert out.gt_embeddings.shape == (2, 2048)
    assert out.pred_instances.embeddings.shape[1] == 2048


# Fine-tuning configs (those that start from a pre-training checkpoint too); the
# pre-training ones (COCOPersons, synthetic COCO) are checked in test_spnet_pretrain.py.
SPNET_CONFIGS = sorted(
    f for f in __import__('os').listdir(osp.join(ROOT, 'configs/spnet'))
    if f.endswith('.py') and not f.endswith(('coco-persons.py', 'synthetic-coco.py')))


@pytest.mark.parametrize('name', SPNET_CONFIGS)
def test_configs_load_with_paper_settings(name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/spnet', name))
    model = cfg.model
    head, roi, casc = model.bbox_head, model.roi_head, model.cascade
    # Settings every SPNet config shares (spnet.md §9, docs/config_parity.md).
    assert model.type == 'SPNet' and head.embed_dim == (64 if 'quickstart' in name else 128)
    assert head.loss_cls.alpha == 0.5 and head.loss_cls.gamma == 1.0
    assert head.anchor_generator.sizes[1] == [64, 80, 101]
    # the CPU quick-start uses pedestrian anchor shapes (h/w) for its synthetic people
    assert head.anchor_generator.get('ratios', [0.5, 1.0, 2.0]) == (
        [2.0, 3.0, 4.5] if 'quickstart' in name else [0.5, 1.0, 2.0])
    assert model.train_cfg.bbox_head.assigner.pos_iou_thr == 0.5
    assert model.train_cfg.bbox_head.assigner.neg_iou_thr == 0.4
    assert model.train_cfg.bbox_head.qc.num_pairs == 32
    assert model.train_cfg.bbox_head.qc.num_anchors == 64
    assert model.train_cfg.roi_head.pos_iou_thr == 0.7
    assert model.test_cfg.bbox_head.pre_topk == 1000 and model.test_cfg.bbox_head.topk == 300
    assert roi.loss_reid.scale == 30.0 and roi.loss_reid.momentum == 0.5
    assert roi.loss_reid.reduction == 'spnet' and roi.loss_reid.feat_dim == roi.reid_dim
    assert roi.num_loc_heads in (0, max(1, casc.num_stages))
    assert cfg.train_dataloader.batch_size == 8
    if 'quickstart' in name:
        assert cfg.model.backbone.init_cfg is None  # nothing to download
        return
    opt = cfg.optim_wrapper
    assert opt.type == 'AmpOptimWrapper' and opt.clip_grad.max_norm == 10.0
    assert opt.optimizer.type == 'AdamW' and opt.optimizer.lr == 1e-4
    assert opt.optimizer.weight_decay == 5e-4
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR', 1e-3, 1000)
    assert cosine.type == 'CosineAnnealingLR' and cosine.eta_min == 0.0
    assert cfg.train_cfg.max_epochs == 30
    crop = [t for t in cfg.train_dataloader.dataset.pipeline
            if t.type == 'RandomPersonCrop'][0].crop_size
    assert crop == (1024 if name.startswith('spnet-l') else 512)
    cuhk = name.endswith('cuhk-sysu.py')
    assert (roi.loss_reid.num_person_ids, roi.loss_reid.queue_size) == (
        (5532, 5000) if cuhk else (483, 500))
    qc = '-qc' in name.split('_')[0]  # '-qcpt' in the backbone part is the init
    assert model.train_cfg.path == ('qc' if qc else 'oc')
    assert (cfg.train_dataloader.sampler.type == 'RepeatSampler') == qc
    if name.startswith('spnet-l'):
        assert (model.backbone.arch, casc.num_stages, roi.reid_dim) == ('base', 2, 2048)
        assert model.backbone.drop_path_rate == 0.5 and model.neck.out_channels == 512


@pytest.mark.parametrize('name', ['spnet-c2-share-d128_convnext-t_30e_cuhk-sysu.py',
                                  'spnet-s-logits-bn-pos_convnext-t_30e_prw.py'])
def test_ablation_configs_build(name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs/spnet', name)).model
    cfg.backbone.init_cfg = None
    model = MODELS.build(cfg)
    if 'c2-share' in name:
        assert model.cascade.num_stages == 2 and model.roi_head.shared
    else:
        assert type(model.bbox_head.logits).__name__ == 'BatchNormLogits'
        assert model.bbox_head.logits.sign == 'pos'


def test_quickstart_config_on_synthetic_data(tmp_path):
    """The quick-start config end to end on a tiny synthetic PRW-layout set: real dataset,
    pipeline and data preprocessor, one OC and one QC training step, prediction and the
    person-search metric."""
    import subprocess
    import sys

    from mmengine.dataset import pseudo_collate

    from mmpsearch.registry import DATASETS, METRICS
    root = tmp_path / 'synthetic_prw'
    subprocess.run([sys.executable, osp.join(ROOT, 'tools/make_synthetic.py'), '--out',
                    str(root), '--layout', 'prw', '--seed', '0', '--num-train-frames', '8',
                    '--num-test-frames', '4', '--num-train-ids', '4', '--num-test-ids', '3'],
                   check=True, capture_output=True)
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/spnet/spnet-s_convnext-atto_quickstart_synthetic-prw.py'))
    cfg.train_dataloader.dataset.data_root = str(root)
    cfg.test_dataloader.dataset.data_root = str(root)
    train_set = DATASETS.build(cfg.train_dataloader.dataset)
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    torch.manual_seed(0)
    model = _build(cfg.model)
    model.train()
    batch = pseudo_collate([train_set[i] for i in range(4)])
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert set(losses) == {'loss_anchor_cls', 'loss_bbox0', 'loss_reid'}
    sum(losses.values()).backward()
    model.train_path = 'qc'  # same weights, the other path (views: the same image twice)
    model.bbox_head.qc_sampler.num_pairs = 8
    batch = pseudo_collate([train_set[0], train_set[0], train_set[1], train_set[1]])
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    metric = METRICS.build(dict(type='PersonSearchMetric'))
    metric.dataset_meta = test_set.metainfo
    with torch.no_grad():
        for i in range(len(test_set)):
            batch = pseudo_collate([test_set[i]])
            out = model(**model.data_preprocessor(batch, False), mode='predict')
            assert out[0].gt_embeddings.shape[0] == len(batch['data_samples'][0].gt_instances)
            metric.process(batch, out)
    results = metric.compute_metrics(metric.results)
    assert 0.0 <= results['mAP'] <= 1.0 and 'reid_standard/mAP' in results


@pytest.mark.parametrize('path,cascade', [('oc', 2), ('qc', 0)])
def test_protonorm_loim_training_step(path, cascade):
    """OIMNet++'s ProtoNorm + LOIM in SPNet's shared re-id head (the ``*pn-loim*`` configs),
    also where the shared head embeds QC queries and cascade proposals."""
    torch.manual_seed(0)
    cfg = _small_cfg(path=path, cascade=cascade)
    cfg.roi_head.norm_cfg = dict(type='ProtoNorm1d', affine=False)
    cfg.roi_head.loss_reid.update(type='LOIMLoss', iou_lower=0.7, eps=0.1)
    model = _build(cfg)
    samples = [_sample('a'), _sample('a'), _sample('b', pids=(3, 4)), _sample('b', pids=(3, 4))]
    losses = _train_step(model, samples)
    assert 'loss_reid' in losses


@pytest.mark.parametrize('path', ['oc', 'qc'])
def test_training_step_with_no_boxes_gives_zero_losses(path):
    """A batch whose crops kept no box: zero losses with a graph on both paths (§4.8)."""
    torch.manual_seed(0)
    model = _build(_small_cfg(path))
    empty = [_sample(v, pids=(), labels=(), known=()) for v in ('a', 'a', 'b', 'b')]
    for ds in empty:
        ds.gt_instances.bboxes = torch.zeros((0, 4))
        ds.query_instances = InstanceData(bboxes=torch.zeros((0, 4)),
                                          person_ids=torch.zeros(0, dtype=torch.long),
                                          query_idx=torch.zeros(0, dtype=torch.long))
    losses = _train_step(model, empty)
    assert set(losses) >= {'loss_anchor_cls', 'loss_bbox0', 'loss_reid'}
    # the OC dense loss still sees background anchors; QC has no pair at all
    for key in ('loss_bbox0', 'loss_reid') + (('loss_anchor_cls',) if path == 'qc' else ()):
        assert float(losses[key]) == 0.0, key
