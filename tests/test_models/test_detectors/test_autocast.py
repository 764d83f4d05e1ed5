# Copyright (c) mmpsearch contributors. All rights reserved.
"""Training and inference steps under CPU autocast (bf16, and fp16 where this torch has a CPU
fp16 autocast), as ``AmpOptimWrapper`` runs them on a GPU: the code paths that create
tensors, update memories or reduce statistics must follow the input's device and keep their
float32 state, and the losses must stay finite.

The GPU configs train with ``AmpOptimWrapper`` (fp16 on CUDA); it cannot be built on a
machine without a GPU, so these tests open the same ``torch.autocast`` context its
``optim_context`` opens, on the CPU.
"""
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmpsearch.models.losses import OIMLoss
from mmpsearch.models.necks.proto_norm import _ProtoNorm
from mmpsearch.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
QUICKSTART = osp.join(ROOT, 'configs/spnet/spnet-s_convnext-atto_quickstart_synthetic-prw.py')
OIMNETPPP = osp.join(ROOT, 'configs/oimnetpp/oimnetppp_r50-c4_20e_prw.py')


def _cpu_autocast_dtypes():
    """bf16 always; fp16 only where this torch supports CPU fp16 autocast (torch >= 2.4)."""
    dtypes = [pytest.param(torch.bfloat16, id='bf16')]
    try:
        with torch.autocast(device_type='cpu', dtype=torch.float16):
            ok = torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float16
    except (RuntimeError, UserWarning):
        ok = False
    marks = () if ok else pytest.mark.skip(reason='this torch has no CPU fp16 autocast')
    dtypes.append(pytest.param(torch.float16, id='fp16', marks=marks))
    return dtypes


AMP_DTYPES = _cpu_autocast_dtypes()


def _spnet_sample(img_id, size, pids, labels, known):
    boxes = torch.tensor([[10., 10., 50., 90.], [60., 20., 100., 110.]]) * size / 128
    ds = DetDataSample(metainfo=dict(img_id=img_id, img_shape=(size, size),
                                     ori_shape=(size, size), scale_factor=(1.0, 1.0)))
    ds.gt_instances = InstanceData(bboxes=boxes, labels=torch.zeros(2, dtype=torch.long),
                                   person_ids=torch.tensor(pids),
                                   person_labels=torch.tensor(labels),
                                   known=torch.tensor(known))
    ds.query_instances = InstanceData(bboxes=boxes[:1], person_ids=torch.tensor(pids[:1]),
                                      query_idx=torch.tensor([0]))
    return ds


def _oimnet_samples(n, h=64, w=96):
    out = []
    for i in range(n):
        s = DetDataSample()
        s.set_metainfo(dict(img_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                            ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([[8., 8., 30., 60.], [50., 4., 80., 60.]]),
            labels=torch.zeros(2, dtype=torch.long), person_labels=torch.tensor([i, -1]),
            known=torch.tensor([True, False]))
        s.query_instances = InstanceData(bboxes=torch.tensor([[8., 8., 30., 60.]]))
        out.append(s)
    return out


def _state_dtypes_are_float32(model):
    """Every parameter and floating buffer stays float32 (autocast casts copies only)."""
    bad = [n for n, t in list(model.named_parameters()) + list(model.named_buffers())
           if t.is_floating_point() and t.dtype != torch.float32]
    assert not bad, bad


def _check_losses_and_grads(model, losses):
    flat = {k: v for k, val in losses.items()
            for k, v in ([(k, val)] if torch.is_tensor(val) else
                         [(f'{k}{i}', x) for i, x in enumerate(val)])}
    for key, value in flat.items():
        assert torch.isfinite(value).all(), (key, value)
    # The memory-based re-id loss is computed in float32 even under autocast.
    reid = [v for k, v in flat.items() if 'reid' in k]
    assert reid and all(v.dtype == torch.float32 for v in reid)
    total = sum(v.float().sum() for v in flat.values())
    total.backward()
    grads = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    assert grads
    for name, grad in grads:
        assert grad.dtype == torch.float32, name
        assert torch.isfinite(grad).all(), name
    _state_dtypes_are_float32(model)


def _record_conv_dtypes(module):
    """The output dtypes of the first convolution in ``module``: autocast took effect."""
    module = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))
    seen = []

    def hook(_, __, out):
        outs = out if isinstance(out, (list, tuple)) else [out]
        seen.extend(o.dtype for o in outs if torch.is_tensor(o))

    module.register_forward_hook(hook)
    return seen


def _check_unit_embeddings(out):
    """GT-box and query-box embeddings of a prediction: finite, unit length."""
    for key in ('gt_embeddings', 'query_embeddings'):
        emb = out.get(key)
        assert emb is not None and emb.shape[0] > 0 and torch.isfinite(emb).all(), key
        torch.testing.assert_close(emb.float().norm(dim=1), torch.ones(emb.shape[0]),
                                   atol=1e-2, rtol=0)


def _memories(model):
    loss = [m for m in model.modules() if isinstance(m, OIMLoss)]
    assert len(loss) == 1
    return loss[0]


@pytest.mark.parametrize('amp_dtype', AMP_DTYPES)
def test_spnet_quickstart_training_steps_under_autocast(amp_dtype):
    """SPNet-S as the quick-start config builds it (embedding sizes, anchors, re-id head,
    OIM), with a narrower trunk, one OC and one QC training step inside
    ``torch.autocast('cpu', amp_dtype)``."""
    cfg = Config.fromfile(QUICKSTART).model
    # CPUs without native bf16/fp16 run reduced-precision convolutions ~15x slower than
    # float32: a narrow trunk keeps this test in seconds; the code paths are the same.
    channels = [8, 16, 32, 64]
    cfg.backbone.arch.update(depths=[1, 1, 1, 1], channels=channels)
    cfg.neck.update(in_channels=channels[1:], out_channels=channels[2])
    cfg.bbox_head.in_channels = channels[2]
    cfg.roi_head.roi_extractor.out_channels = channels[2]
    cfg.roi_head.loss_reid.update(num_person_ids=8, queue_size=8)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    model.bbox_head.qc_sampler.num_pairs = 8
    size = 96
    samples = [_spnet_sample('a', size, (1, 2), (0, -1), (True, False)),
               _spnet_sample('a', size, (1, 2), (0, -1), (True, False)),
               _spnet_sample('b', size, (3, 4), (1, 2), (True, True)),
               _spnet_sample('b', size, (3, 4), (1, 2), (True, True))]
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8)
              for _ in samples]
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=True)
    oim = _memories(model)
    trunk_dtypes = _record_conv_dtypes(model.backbone)
    for path in ('oc', 'qc'):
        model.train_path = path
        model.zero_grad()
        with torch.autocast(device_type='cpu', dtype=amp_dtype):
            losses = model(**data, mode='loss')
        assert set(losses) == {'loss_anchor_cls', 'loss_bbox0', 'loss_reid'}, path
        _check_losses_and_grads(model, losses)
        # The labelled identities reached their LUT rows (unit float32 rows).
        assert oim.lut.dtype == torch.float32
        torch.testing.assert_close(oim.lut[[0, 1, 2]].norm(dim=1), torch.ones(3))
    assert int(oim.queue_ptr) > 0  # the unlabelled person went to the queue
    assert trunk_dtypes and set(trunk_dtypes) == {amp_dtype}  # autocast was in effect
    model.eval()
    data = model.data_preprocessor(
        dict(inputs=inputs[:1], data_samples=[_spnet_sample('c', size, (1, 2), (0, -1),
                                                            (True, False))]), training=False)
    with torch.no_grad(), torch.autocast(device_type='cpu', dtype=amp_dtype):
        out = model(**data, mode='predict')[0]
    _check_unit_embeddings(out)
    assert out.pred_instances.bboxes.dtype == torch.float32


@pytest.mark.parametrize('amp_dtype', AMP_DTYPES)
def test_oimnetppp_training_step_under_autocast(amp_dtype):
    """OIMNet+++ (C4, ProtoNorm in conv5 and the projector, LOIM), one training step inside
    ``torch.autocast('cpu', amp_dtype)``, then eval-mode prediction under autocast."""
    cfg = Config.fromfile(OIMNETPPP).model
    cfg.backbone.init_cfg = None  # no download in tests
    cfg.roi_head.shared_head.init_cfg = None
    # ResNet-18 instead of 50, 4x4 RoIs and few of them: reduced-precision convolutions run
    # ~15x slower than float32 on CPUs without native bf16/fp16; the code paths are the same.
    cfg.backbone.depth = 18
    cfg.rpn_head.update(in_channels=256, feat_channels=64)
    cfg.roi_head.shared_head.depth = 18
    cfg.roi_head.bbox_roi_extractor.update(out_channels=256)
    cfg.roi_head.bbox_roi_extractor.roi_layer.output_size = 4
    cfg.roi_head.bbox_head.in_channels = 512
    cfg.roi_head.reid_head.in_channels = 512
    cfg.roi_head.reid_loss.update(num_person_ids=4, queue_size=8)
    cfg.train_cfg.rpn_proposal.update(nms_pre=100, max_per_img=8)
    cfg.train_cfg.rcnn.sampler.num = 4
    cfg.test_cfg.rpn.update(nms_pre=100, max_per_img=4)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    norms = [m for m in model.modules() if isinstance(m, _ProtoNorm)]
    assert len(norms) == 6  # ResNet-18 conv5: 2 blocks x 2 + downsample, + projector
    before = [m.running_mean.clone() for m in norms]
    oim = _memories(model)
    trunk_dtypes = _record_conv_dtypes(model.backbone)
    with torch.autocast(device_type='cpu', dtype=amp_dtype):
        losses = model.loss(torch.randn(2, 3, 64, 96), _oimnet_samples(2))
    _check_losses_and_grads(model, losses)
    assert trunk_dtypes and set(trunk_dtypes) == {amp_dtype}  # autocast was in effect
    for m, old in zip(norms, before):
        assert m.running_mean.dtype == torch.float32 and torch.isfinite(m.running_var).all()
        assert not torch.equal(m.running_mean, old)
    assert oim.lut.dtype == torch.float32
    torch.testing.assert_close(oim.lut[[0, 1]].norm(dim=1), torch.ones(2))
    model.eval()
    with torch.no_grad(), torch.autocast(device_type='cpu', dtype=amp_dtype):
        out = model.predict(torch.randn(1, 3, 64, 96), _oimnet_samples(1))[0]
    _check_unit_embeddings(out)
