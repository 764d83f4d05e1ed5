# Copyright (c) mmpsearch contributors. All rights reserved.
"""SPNet pre-training on hand-made samples (spnet.md §3.10, §4.6-4.9): QC/OC steps with the
EMA teacher's prototypes, LwF, Frozen-BB, re-id only, the missing-hook error, the optimiser
parameter groups of every Table 7 variant, and a state-dict round trip."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.structures import InstanceData

from mmpsearch.engine.hooks import TeacherEMAHook
from mmpsearch.models.detectors import SPNetPretrain
from mmpsearch.registry import MODELS
from mmpsearch.utils import register_all_modules

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
BASE = osp.join(ROOT, 'configs/_base_/models/spnet-s-pretrain_convnext-t.py')
CFG_DIR = osp.join(ROOT, 'configs/spnet')


def _small_cfg(path='qc', **kw):
    cfg = Config.fromfile(BASE).model
    cfg.backbone.update(arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
                        init_cfg=None)
    cfg.neck.update(in_channels=[16, 32, 64], out_channels=32)
    cfg.bbox_head.in_channels = 32
    cfg.roi_head.roi_extractor.out_channels = 32
    cfg.roi_head.loss_reid.queue_size = 64
    cfg.train_cfg.path = path
    cfg.update(kw)
    return cfg


def _sample(img_id, boxes=((10., 10., 50., 90.), (60., 20., 100., 110.)), ids=(0, 1)):
    """A COCO-like sample: every box known, person_label = its annotation's dense id."""
    n = len(ids)
    ds = DetDataSample(metainfo=dict(img_id=img_id, img_shape=(128, 128),
                                     ori_shape=(128, 128), scale_factor=(1., 1.)))
    ds.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float).reshape(-1, 4)[:n],
        labels=torch.zeros(n, dtype=torch.long), person_ids=torch.tensor(ids) + 100,
        person_labels=torch.tensor(ids), known=torch.ones(n, dtype=torch.bool),
        instance_ids=torch.arange(n))
    return ds


def _views():
    """4 images x 2 views as the repeat sampler gives them."""
    return [_sample('a'), _sample('a'), _sample('b', ids=(2, 3)), _sample('b', ids=(2, 3)),
            _sample('c', ids=(4, )), _sample('c', ids=(4, )), _sample('d', ids=(5, 6)),
            _sample('d', ids=(5, 6))]


def _build(cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    return model


def _data(model, samples, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (3, 128, 128), generator=gen, dtype=torch.uint8)
              for _ in samples]
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=True)


@pytest.mark.parametrize('path', ['qc', 'oc'])
def test_training_step_enqueues_teacher_prototypes(path):
    torch.manual_seed(0)
    model = _build(_small_cfg(path, train_cfg=dict(path=path, roi_head=dict(gt_only=True))))
    assert isinstance(model, SPNetPretrain)
    # the teacher starts as the student's copy
    for (name, p_k), (_, p_q) in zip(model.teacher.module.named_parameters(),
                                     model._teacher_source().named_parameters()):
        assert torch.equal(p_k, p_q) and not p_k.requires_grad, name
    with torch.no_grad():  # make the teacher differ from the student
        for p in model.teacher.module.parameters():
            p.add_(0.05 * torch.randn_like(p))
    data = _data(model, _views())
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_anchor_cls', 'loss_bbox0', 'loss_reid'}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    # the queue holds one prototype per identity: the normalised mean of the teacher's
    # embeddings of that identity's GT boxes in both views (gt_only: no detected boxes)
    loss = model.roi_head.loss_reid
    assert sorted(loss.queue_ids[loss.queue_ids >= 0].tolist()) == list(range(7))
    model.eval()
    with torch.no_grad():
        parts = model.teacher.module
        feats = parts.features(data['inputs'])
        from mmdet.structures.bbox import bbox2roi
        boxes = [ds.gt_instances.bboxes for ds in data['data_samples']]
        emb = parts.embed(model.roi_head.roi_extractor([feats[0]], bbox2roi(boxes)))
    labels = torch.cat([ds.gt_instances.person_labels for ds in data['data_samples']])
    model.train()
    # BatchNorm: train-mode batch statistics in the step, so compare directions per id
    # through the eval embeddings' ranking rather than values
    for pid in range(7):
        slot = (loss.queue_ids == pid).nonzero()[0, 0]
        sims = F.normalize(emb, dim=1) @ loss.queue[slot]
        assert sims[labels == pid].mean() > sims[labels != pid].mean()
    # without the hook the next step refuses to run
    with pytest.raises(RuntimeError, match='TeacherEMAHook'):
        model(**data, mode='loss')
    before = [p.clone() for p in model.teacher.module.parameters()]
    model.update_teacher()
    after = list(model.teacher.module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before))
    model(**data, mode='loss')


def test_teacher_prototypes_without_batchnorm_noise():
    """With one identity per image pair and a frozen copy, the prototype equals the mean
    teacher embedding computed directly in the same (train) mode."""
    torch.manual_seed(0)
    cfg = _small_cfg('oc', train_cfg=dict(path='oc', roi_head=dict(gt_only=True)))
    cfg.roi_head.norm_cfg = dict(type='LN')  # per-row norm: no batch dependence
    cfg.backbone.drop_path_rate = 0.0
    model = _build(cfg)
    data = _data(model, _views())
    model(**data, mode='loss')
    from mmdet.structures.bbox import bbox2roi
    with torch.no_grad():
        parts = model.teacher.module
        feats = parts.features(data['inputs'])
        boxes = [ds.gt_instances.bboxes for ds in data['data_samples']]
        emb = parts.embed(model.roi_head.roi_extractor([feats[0]], bbox2roi(boxes)))
    labels = torch.cat([ds.gt_instances.person_labels for ds in data['data_samples']])
    loss = model.roi_head.loss_reid
    for pid in range(7):
        slot = (loss.queue_ids == pid).nonzero()[0, 0]
        want = F.normalize(emb[labels == pid].mean(0), dim=0)
        torch.testing.assert_close(loss.queue[slot], want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('path', ['qc', 'oc'])
def test_batch_without_boxes(path):
    """Crops that kept no box: zero detection and re-id losses, queue untouched."""
    torch.manual_seed(0)
    model = _build(_small_cfg(path))
    empty = [_sample(v, ids=()) for v in 'aabbccdd']
    losses = model(**_data(model, empty), mode='loss')
    assert float(losses['loss_reid']) == 0.0 and float(losses['loss_bbox0']) == 0.0
    sum(losses.values()).backward()
    assert (model.roi_head.loss_reid.queue_ids == -1).all()


def test_hook_updates_the_unwrapped_model():
    torch.manual_seed(0)
    model = _build(_small_cfg('oc'))

    class Runner:
        pass

    runner = Runner()
    runner.model = model
    hook = TeacherEMAHook()
    hook.before_train(runner)
    model(**_data(model, _views()), mode='loss')
    hook.after_train_iter(runner, 0)
    assert int(model.teacher.steps) == 1
    runner.model = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match='no update_teacher'):
        hook.before_train(runner)


def test_lwf_loss_and_frozen_initial_copy():
    torch.manual_seed(0)
    cfg = _small_cfg('oc', lwf=dict(classifier=dict(num_classes=10),
                                    loss=dict(type='LwFLoss', formula='released')))
    model = _build(cfg)
    for (_, a), (_, b) in zip(model.lwf_teacher.trunk.named_parameters(),
                              model.backbone.named_parameters()):
        assert torch.equal(a, b) and not a.requires_grad
    data = _data(model, _views())
    losses = model(**data, mode='loss')
    assert 'loss_lwf' in losses
    # student == teacher at the start: the released formula's value at equal logits
    with torch.no_grad():
        logits = model.lwf_classifier(model.backbone(data['inputs'])[-1])
    p = F.softmax(logits / 2, dim=1)
    x = F.log_softmax(logits / 2, dim=1)
    want = (-(p * F.logsigmoid(x) + (1 - p) * F.logsigmoid(-x))).mean()
    # drop path is 0.1 in train mode: the trunk is stochastic, so only the size matches
    assert losses['loss_lwf'].item() == pytest.approx(want.item(), rel=0.2)
    losses['loss_lwf'].backward()
    assert model.lwf_classifier.fc.weight.grad is not None
    assert all(p.grad is None for p in model.lwf_teacher.parameters())


def test_frozen_trunk_and_reid_only():
    torch.manual_seed(0)
    model = _build(_small_cfg('oc', freeze_trunk=True,
                              train_cfg=dict(path='oc', reid_only=True,
                                             roi_head=dict(gt_only=True))))
    losses = model(**_data(model, _views()), mode='loss')
    assert set(losses) == {'loss_reid'}
    losses['loss_reid'].backward()
    assert all(p.grad is None and not p.requires_grad for p in model.backbone.parameters())
    assert model.backbone.training  # stochastic depth stays active
    assert model.neck.lateral_convs[0].conv.weight.grad is not None
    assert model.roi_head.reid_stage.stage.blocks[0].depthwise_conv.weight.grad is not None


def test_state_dict_round_trip_reproduces_queue_and_teacher():
    torch.manual_seed(0)
    cfg = _small_cfg('qc')
    model = _build(cfg)
    for seed in range(2):
        model(**_data(model, _views(), seed), mode='loss')['loss_reid'].backward()
        model.update_teacher()
    state = model.state_dict()
    assert {'teacher.steps', 'roi_head.loss_reid.queue', 'roi_head.loss_reid.queue_ids',
            'roi_head.loss_reid.queue_ptr'} <= set(state)
    torch.manual_seed(1)
    other = _build(cfg)  # a fresh init, then the checkpoint (what resume does)
    other.load_state_dict(state)
    for key, value in other.state_dict().items():
        assert torch.equal(value, state[key]), key


# ---------------------------------------------------------------- optimiser groups
def _groups(name):
    register_all_modules()
    cfg = Config.fromfile(osp.join(CFG_DIR, name))
    model = MODELS.build(cfg.model)
    ow = cfg.optim_wrapper.copy()
    ow.type = 'OptimWrapper'  # AMP needs CUDA; the groups are the same
    for key in ('dtype', 'loss_scale'):
        ow.pop(key, None)
    wrapper = build_optim_wrapper(model, ow)
    where = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            where[id(p)] = (group['lr'], group['weight_decay'])
    return model, {n: where.get(id(p)) for n, p in model.named_parameters()}


def _check(groups, rule):
    for name, got in groups.items():
        assert got == rule(name), (name, got)


@pytest.mark.parametrize('variant, trunk, rest', [
    ('', (1e-5, 0.0), (1e-4, 1e-3)),                 # Mixed LR
    ('-uniform-lr', (1e-4, 1e-3), (1e-4, 1e-3)),     # Uniform LR
    ('-lwf', (1e-5, 0.0), (1e-4, 1e-3)),             # Mixed LR + LwF
    ('-frozen-bb', None, (1e-4, 1e-3)),              # Frozen-BB: trunk not optimised
])
def test_parameter_groups_of_table7_variants(variant, trunk, rest):
    model, groups = _groups(f'spnet-s-qcpt{variant}_convnext-t_30e_coco-persons.py')

    def rule(name):
        if name.startswith(('teacher.', 'lwf_teacher.')):
            return None  # teachers: no gradient, not in the optimiser
        if name.startswith('backbone.'):
            return trunk
        return rest
    _check(groups, rule)
    got = {k: v for k, v in groups.items()}
    assert got['roi_head.reid_stage.stage.blocks.0.gamma'] == rest  # the stage-4 copies
    assert got['neck.fpn_convs.0.conv.weight'] == rest
    if variant == '-lwf':
        assert got['lwf_classifier.fc.weight'] == rest
        assert any(k.startswith('lwf_teacher.') for k in got)


def test_parameter_groups_of_fine_tuning():
    register_all_modules()
    cfg = Config.fromfile(osp.join(CFG_DIR, 'spnet-s_convnext-t_30e_prw.py'))
    model = MODELS.build(cfg.model)
    ow = cfg.optim_wrapper.copy()
    ow.type = 'OptimWrapper'
    for key in ('dtype', 'loss_scale'):
        ow.pop(key, None)
    groups = build_optim_wrapper(model, ow).optimizer.param_groups
    assert len(groups) == 1 and groups[0]['lr'] == 1e-4 and groups[0]['weight_decay'] == 5e-4
    assert len(groups[0]['params']) == len(list(model.parameters()))


# ---------------------------------------------------------------- configs
_PT_CONFIGS = sorted(
    osp.basename(p) for p in __import__('glob').glob(osp.join(CFG_DIR, '*pt*_coco-persons.py')))


def test_every_pretraining_config_is_listed():
    assert len(_PT_CONFIGS) == 13


@pytest.mark.parametrize('name', _PT_CONFIGS)
def test_pretraining_configs_build_with_paper_settings(name):
    """Full-size models (no weights loaded) with the settings of spnet.md §3.9-§4.9."""
    register_all_modules()
    cfg = Config.fromfile(osp.join(CFG_DIR, name))
    path = 'qc' if '-qcpt' in name else 'oc'
    model = MODELS.build(cfg.model)
    assert isinstance(model, SPNetPretrain) and model.train_path == path
    assert model.cascade is None and model.roi_head.shared  # c0-share-d128
    assert model.roi_head.reid_dim == 128 and model.bbox_head.embed_dim == 128
    loss = model.roi_head.loss_reid
    assert type(loss).__name__ == 'PrototypeQueueLoss'
    assert (loss.queue_size, loss.scale) == (65536, 10.0)
    assert model.teacher is not None and model.teacher.momentum == 1e-4
    assert {h['type'] for h in cfg.custom_hooks} >= {'TeacherEMAHook', 'RNGStateHook'}
    assert model.bbox_head.sampler.num == 256  # OC pre-training quota
    qc = model.bbox_head.qc_sampler
    assert (qc.num_pairs, qc.num_anchors) == (32, 64)
    assert model.roi_head.train_cfg['max_per_group'] == 16
    assert model.roi_head.train_cfg['gt_only'] == ('reid-gt' in name or 'reid-only' in name)
    assert model.reid_only == ('reid-only' in name)
    assert model.freeze_trunk == ('frozen-bb' in name)
    assert (model.lwf_loss is not None) == ('-lwf' in name)
    if model.lwf_loss is not None:
        assert (model.lwf_loss.temperature, model.lwf_loss.formula) == (2.0, 'released')
    arch = 'base' if name.startswith('spnet-l') else 'tiny'
    assert model.backbone.channels[-1] == (1024 if arch == 'base' else 768)
    # data: COCOPersons, rrc_scale 512 crops, 4 images x 2 views
    dl = cfg.train_dataloader
    assert dl.batch_size == 8 and dl.sampler.type == 'RepeatSampler'
    assert dl.sampler.num_repeats == 2 and dl.sampler.seed == 0
    assert dl.dataset.type == 'COCOPersonsDataset'
    crop = [t for t in dl.dataset.pipeline if t['type'] == 'RandomPersonCrop'][0]
    pad = [t for t in dl.dataset.pipeline if t['type'] == 'CenterPad'][0]
    assert crop['crop_size'] == 512 and pad['size'] == 2048
    # optimisation: AdamW 1e-4 / 1e-3, AMP, clip 10, warm-up 1000 + cosine, 30 epochs
    ow = cfg.optim_wrapper
    assert ow.type == 'AmpOptimWrapper' and ow.clip_grad.max_norm == 10.0
    assert ow.optimizer.type == 'AdamW' and ow.optimizer.lr == 1e-4
    assert ow.optimizer.weight_decay == 1e-3
    assert ow.constructor == 'TrainableOptimWrapperConstructor'
    mixed = not any(v in name for v in ('uniform-lr', 'frozen-bb'))
    assert bool(ow.paramwise_cfg.get('custom_keys')) == mixed
    assert cfg.param_scheduler[0].end == 1000 and cfg.train_cfg.max_epochs == 30
