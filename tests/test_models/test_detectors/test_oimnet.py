# Copyright (c) mmpsearch contributors. All rights reserved.
"""OIMNet family configs (configs/oimnetpp) and the R50-C4 detector built from them."""
import glob
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmpsearch.models.necks import ProtoNorm1d, ProtoNorm2d
from mmpsearch.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIGS = sorted(p for p in glob.glob(osp.join(REPO, 'configs/oimnetpp/*.py'))
                 if '_20e_' in osp.basename(p))

# Table 2 rows and the other variants: (normaliser, loss, LOIM lower clip, conv5 norm, id_mode)
EXPECTED = {
    'oimnet': ('none', 'OIMLoss', None, 'BN', 'released'),
    'oimnet-bn': ('BN', 'OIMLoss', None, 'BN', 'released'),
    'oimnet-pn': ('PN', 'OIMLoss', None, 'BN', 'released'),
    'oimnet-bn-loim': ('BN', 'LOIMLoss', 0.7, 'BN', 'released'),
    'oimnetpp': ('PN', 'LOIMLoss', 0.7, 'BN', 'released'),
    'oimnetpp-paper': ('PN', 'LOIMLoss', 0.0, 'BN', 'paper'),
    'oimnetppp': ('PN', 'LOIMLoss', 0.7, 'PN', 'released'),
}
MEMORY = {'prw': (482, 500), 'cuhk-sysu': (5532, 5000)}  # spec oimnetpp.md §3.1


def test_every_variant_and_dataset_has_a_config():
    names = {osp.basename(p) for p in CONFIGS}
    for algo in EXPECTED:
        for ds in MEMORY:
            assert f'{algo}_r50-c4_20e_{ds}.py' in names


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_contents(path):
    cfg = Config.fromfile(path)
    algo, _, _, ds = osp.basename(path)[:-3].split('_')
    norm, loss, lower, conv5, id_mode = EXPECTED[algo]
    rh = cfg.model.roi_head
    assert rh.reid_head.norm == norm and rh.reid_head.id_mode == id_mode
    assert rh.reid_loss.type == loss and rh.shared_head_norm == conv5
    assert (rh.reid_loss.num_person_ids, rh.reid_loss.queue_size) == MEMORY[ds]
    assert rh.reid_loss.scale == 30.0 and rh.reid_loss.feat_dim == 256
    if lower is not None:
        assert rh.reid_loss.iou_lower == lower and rh.reid_loss.eps == 0.1
    assert rh.bbox_head.loss_bbox.loss_weight == (1.0 if id_mode == 'paper' else 10.0)
    # Schedule (paper Sec. 4.1, spec §4).
    assert cfg.optim_wrapper.optimizer.lr == 0.003 and cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.train_cfg.max_epochs == 20 and cfg.train_dataloader.batch_size == 5
    assert cfg.param_scheduler[1].milestones == [16]


def _r50_model_cfg(path):
    cfg = Config.fromfile(path).model
    cfg.backbone.init_cfg = None  # no download in tests
    cfg.roi_head.shared_head.init_cfg = None
    cfg.roi_head.reid_loss.update(num_person_ids=4, queue_size=8)
    cfg.train_cfg.rpn_proposal.update(nms_pre=100, max_per_img=20)
    cfg.train_cfg.rcnn.sampler.num = 8
    cfg.test_cfg.rpn.update(nms_pre=100, max_per_img=10)
    return cfg


def _samples(n, h=64, w=96):
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


def test_r50_c4_oimnetppp_structure_train_and_predict():
    path = osp.join(REPO, 'configs/oimnetpp/oimnetppp_r50-c4_20e_prw.py')
    torch.manual_seed(0)
    model = MODELS.build(_r50_model_cfg(path))
    model.init_weights()
    # conv5 = ResNet-50 layer4 with 10 ProtoNorm2d (spec §2.6); ProtoNorm1d in the projector.
    assert sum(isinstance(m, ProtoNorm2d) for m in model.roi_head.shared_head.modules()) == 10
    assert isinstance(model.roi_head.reid_head.norm, ProtoNorm1d)
    # Released freezing: conv1 and bn1 parameters only; bn1 statistics keep running.
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {'backbone.conv1.weight', 'backbone.bn1.weight', 'backbone.bn1.bias'}
    # Anchors: 9 per location, absolute sizes 8/16/32 (spec §1.3; torchvision rounds them).
    base = model.rpn_head.prior_generator.base_anchors[0]
    spec = torch.tensor([[-6, -3, 6, 3], [-11, -6, 11, 6], [-23, -11, 23, 11], [-4, -4, 4, 4],
                         [-8, -8, 8, 8], [-16, -16, 16, 16], [-3, -6, 3, 6], [-6, -11, 6, 11],
                         [-11, -23, 11, 23]], dtype=torch.float32)
    torch.testing.assert_close(base, spec, atol=0.5, rtol=0)
    model.train()
    bn1_mean = model.backbone.bn1.running_mean.clone()
    losses = model.loss(torch.randn(2, 3, 64, 96), _samples(2))
    for key, val in losses.items():
        for v in (val if isinstance(val, list) else [val]):
            assert torch.isfinite(v).all(), key
    assert not torch.equal(model.backbone.bn1.running_mean, bn1_mean)
    model.eval()
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 64, 96), _samples(1))[0]
    assert out.pred_instances.embeddings.shape[1] == 256
    assert out.gt_embeddings.shape == (2, 256) and out.query_embeddings.shape == (1, 256)
    torch.testing.assert_close(out.gt_embeddings.norm(dim=1), torch.ones(2))


def test_bad_frozen_prefix_is_an_error():
    cfg = _r50_model_cfg(osp.join(REPO, 'configs/oimnetpp/oimnet_r50-c4_20e_prw.py'))
    cfg.frozen_parameters = ['backbone.conv0.']
    with pytest.raises(ValueError, match='conv0'):
        MODELS.build(cfg)


def test_synthetic_pipeline_to_predictions(tmp_path):
    """Dataset -> pipeline -> preprocessor -> OIMNet++ loss and predict, with the quick
    synthetic config's data settings (docs/data_contract.md §2)."""
    from mmpsearch.datasets.synthetic import make_synthetic
    from mmpsearch.registry import DATASETS
    make_synthetic(str(tmp_path), layout='prw', seed=1, image_size=(192, 144), num_cameras=2,
                   num_train_frames=6, num_test_frames=6, num_train_ids=4, num_test_ids=3)
    cfg = Config.fromfile(osp.join(REPO, 'configs/oimnetpp/oimnetpp_r50-c4_quick_synthetic-prw.py'))
    mcfg = _r50_model_cfg(osp.join(REPO, 'configs/oimnetpp/oimnetpp_r50-c4_quick_synthetic-prw.py'))
    # ResNet-18 C4 instead of R50 to keep the test fast; the wiring is the same.
    mcfg.backbone.depth = 18
    mcfg.rpn_head.update(in_channels=256, feat_channels=64)
    mcfg.roi_head.shared_head.depth = 18
    mcfg.roi_head.bbox_roi_extractor.out_channels = 256
    mcfg.roi_head.bbox_head.in_channels = 512
    mcfg.roi_head.reid_head.in_channels = 512
    model = MODELS.build(mcfg)
    model.init_weights()
    for split, loader in (('train', cfg.train_dataloader), ('test', cfg.test_dataloader)):
        dcfg = loader.dataset.copy()
        dcfg.data_root = str(tmp_path)
        ds = DATASETS.build(dcfg)
        if split == 'train':
            assert ds.metainfo['num_person_ids'] == 4
        batch = [ds[0], ds[1]]
        data = model.data_preprocessor(dict(inputs=[b['inputs'] for b in batch],
                                            data_samples=[b['data_samples'] for b in batch]),
                                       training=split == 'train')
        if split == 'train':
            model.train()
            losses = model.loss(data['inputs'], data['data_samples'])
            assert torch.isfinite(losses['loss_reid'])
        else:
            model.eval()
            with torch.no_grad():
                outs = model.predict(data['inputs'], data['data_samples'])
            for out in outs:
                assert out.gt_embeddings.shape == (len(out.gt_instances), 256)
                assert out.query_embeddings.shape == (len(out.query_instances), 256)
                h, w = out.ori_shape
                boxes = out.pred_instances.bboxes
                assert (boxes[:, 2] <= w + 1e-3).all() and (boxes[:, 3] <= h + 1e-3).all()


SPNET_PN_LOIM = sorted(glob.glob(osp.join(REPO, 'configs/spnet/*pn-loim*.py')))


def test_spnet_pn_loim_configs():
    """SPNet-S/L with ProtoNorm in the re-id projection and LOIM as re-id loss."""
    assert len(SPNET_PN_LOIM) == 4
    for path in SPNET_PN_LOIM:
        rh = Config.fromfile(path).model.roi_head
        assert rh.norm_cfg.type == 'ProtoNorm1d' and rh.norm_cfg.affine is False
        assert rh.loss_reid.type == 'LOIMLoss' and rh.loss_reid.iou_lower == 0.7
        assert rh.loss_reid.reduction == 'spnet'
    cfg = Config.fromfile(osp.join(REPO, 'configs/spnet/spnet-s-pn-loim_convnext-t_30e_prw.py'))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert sum(isinstance(m, ProtoNorm1d) for m in model.roi_head.modules()) == 2


PRW_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs/oimnetpp/*prw*.py')))


@pytest.fixture(scope='module')
def prw_real_pids(tmp_path_factory):
    """A PRW-layout set numbered like the real PRW: training ids 1, 2, 483, 932 (483 and
    932 are the ids OIMNet++'s label map makes unlabelled), test ids 479, 484."""
    from mmpsearch.datasets.synthetic import make_synthetic
    root = str(tmp_path_factory.mktemp('prw_real_pids'))
    make_synthetic(root, layout='prw', seed=2, image_size=(128, 96), num_cameras=2,
                   num_train_frames=8, num_test_frames=4, num_train_ids=4, num_test_ids=2,
                   prw_pids='real')
    return root


def test_every_oimnet_prw_config_is_covered():
    assert len(PRW_CONFIGS) == 8  # 7 Table-2 variants + the quick synthetic config


@pytest.mark.parametrize('path', PRW_CONFIGS, ids=osp.basename)
def test_one_training_step_with_ids_the_label_map_leaves_out(path, prw_real_pids):
    """One optimiser step of each OIMNet PRW config (its model and training dataset, with
    the PRW label map it sets) on frames showing persons 483/932."""
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import OptimWrapper

    from mmpsearch.registry import DATASETS
    cfg = Config.fromfile(path)
    dcfg = cfg.train_dataloader.dataset.copy()
    dcfg.data_root = prw_real_pids
    for t in dcfg.pipeline:  # tiny images keep the R50 step fast on the CPU
        if t['type'] == 'WindowResize':
            t.update(short_side=96, long_side=128)
    ds = DATASETS.build(dcfg)
    special = [i for i in range(len(ds))
               if any(ins['person_id'] in (483, 932)
                      for ins in ds.get_data_info(i)['instances'])]
    assert special
    oimnetpp_map = dcfg.get('label_mode', 'sorted') == 'oimnetpp'
    for i in special:
        for ins in ds.get_data_info(i)['instances']:
            if ins['person_id'] in (483, 932):
                assert ins['known'] == (not oimnetpp_map) == (ins['person_label'] >= 0)
    mcfg = cfg.model
    mcfg.backbone.init_cfg = None  # no download in tests
    mcfg.roi_head.shared_head.init_cfg = None
    mcfg.roi_head.bbox_roi_extractor.roi_layer.output_size = 4  # conv5 dominates the cost
    # 4 proposals + at most 7 GT boxes are all positives the 24-RoI sampler can take (12),
    # so every GT box, 483/932 included, reaches the re-id loss
    mcfg.train_cfg.rpn_proposal.update(nms_pre=100, max_per_img=4)
    mcfg.train_cfg.rcnn.sampler.num = 24
    torch.manual_seed(0)
    model = MODELS.build(mcfg)  # PyTorch's default init: enough for one finite step
    model.train()
    seen = []
    loss_fn = model.roi_head.reid_loss
    orig = loss_fn.forward

    def spy(emb, labels, known, ious=None):
        seen.append((labels.clone(), known.clone()))
        return orig(emb, labels, known, ious)

    loss_fn.forward = spy
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))  # fp32 on the CPU
    first = [next(i for i in special if any(ins['person_id'] == pid for ins in
                                            ds.get_data_info(i)['instances']))
             for pid in (483, 932)]
    batch = pseudo_collate([ds[i] for i in sorted(set(first))])
    log_vars = model.train_step(batch, optim)
    assert all(torch.isfinite(v) for v in log_vars.values()), log_vars
    labels, known = seen[0]
    assert not (known & (labels < 0)).any()
    if oimnetpp_map:  # the 483/932 boxes went to the queue as unlabelled samples
        assert int(loss_fn.queue_ptr) > 0
