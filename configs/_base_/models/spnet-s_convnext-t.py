# SPNet-S model = c0-share-d128 (spnet.md §3, §9 "Model" / "Detection" / "Re-id"):
# ConvNeXt-T trunk, FPN P3-P7 (384 ch), swap-path head (d = 128, FixedNorm (-)), no cascade
# (num_stages=0; its stage settings live here for the c2 variants), shared RoI head
# (d_r = 128), OIM with the released reduction. The OIM LUT/queue sizes are set by the
# dataset-specific configs in configs/spnet/. Every hyperparameter has its home here;
# docs/config_parity.md maps each released key to its config key.
convnext_tiny_in1k = ('https://download.openmmlab.com/mmclassification/v0/convnext/'
                      'convnext-tiny_32xb128_in1k_20221207-998cf3e9.pth')
embed_dim = 128   # emb_dim
reid_dim = 128    # emb_reid_dim
fpn_dim = 384     # C_f, hard-coded to the stage-3 width in the released code

model = dict(
    type='SPNet',
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor',
        # ImageNet statistics (image_mean / image_std), RGB, batch padding 0 to /32.
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_size_divisor=32, pad_value=0),
    backbone=dict(
        type='ConvNeXtTrunk', arch='tiny', out_indices=(1, 2, 3), out_norm=False,
        drop_path_rate=0.1,  # torchvision default stochastic depth of ConvNeXt-T
        layer_scale_init_value=1e-6,
        init_cfg=dict(type='Pretrained', checkpoint=convnext_tiny_in1k, prefix='backbone.')),
    neck=dict(
        type='mmdet.FPN', in_channels=[192, 384, 768], out_channels=fpn_dim, start_level=0,
        add_extra_convs='on_input', relu_before_extra_convs=True, num_outs=5,
        # torchvision FPN / LastLevelP6P7 init: kaiming_uniform(a=1), zero bias.
        init_cfg=dict(type='Kaiming', layer='Conv2d', a=1, mode='fan_in',
                      nonlinearity='leaky_relu', distribution='uniform')),
    bbox_head=dict(
        type='SwapPathHead', in_channels=fpn_dim, embed_dim=embed_dim,
        anchor_generator=dict(
            type='SizedAnchorGenerator', strides=[8, 16, 32, 64, 128],
            sizes=[[32, 40, 50], [64, 80, 101], [128, 161, 203], [256, 322, 406],
                   [512, 645, 812]],
            ratios=[0.5, 1.0, 2.0], strides_from_image=True),
        bridge=dict(type='OffsetBridge', mode='combiner'),        # bridge_type: combiner
        logits=dict(type='FixedNormLogits', sign='neg'),          # anchor_logits: norm
        reg_head=dict(type='BoxRegressionMLP', num_hidden=4),
        bbox_coder=dict(type='mmdet.DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                        target_stds=[1., 1., 1., 1.]),
        loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=1.0, alpha=0.5,
                      loss_weight=1.0),
        loss_bbox=dict(type='mmdet.GIoULoss', eps=1e-7, loss_weight=1.0),
        prior_prob=0.01),
    roi_head=dict(
        type='ReidRoIHead',
        roi_extractor=dict(
            type='mmdet.SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=2, aligned=False),
            out_channels=fpn_dim, featmap_strides=[8]),
        feat_level=0, reid_dim=reid_dim, loc_dim=embed_dim,
        num_loc_heads=0,                                    # emb_align_sep: False
        norm_cfg=dict(type='SafeBN1d', affine=False),       # emb_norm_type: batchnorm
        loss_reid=dict(type='OIMLoss', num_person_ids=5532, queue_size=5000,
                       feat_dim=reid_dim, scale=30.0, momentum=0.5, loss_weight=1.0,
                       reduction='spnet')),
    cascade=dict(
        type='SwapPathCascade',
        num_stages=0,                                       # num_cascade_steps: 0 (off)
        embed_dim=embed_dim,
        bridge=dict(type='OffsetBridge', mode='combiner'),
        logits=dict(type='FixedNormLogits', sign='neg'),    # cls_logits: norm
        reg_head=dict(type='BoxRegressionMLP', num_hidden=4),
        bbox_coder=dict(type='mmdet.DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                        target_stds=[1., 1., 1., 1.]),
        loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True,
                      loss_weight=1.0),                     # cls_loss_func: xe
        loss_bbox=dict(type='mmdet.GIoULoss', eps=1e-7, loss_weight=1.0)),
    train_cfg=dict(
        path='oc',                                          # train_mode
        bbox_head=dict(
            assigner=dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                          min_pos_iou=0.0, match_low_quality=True, gt_max_assign_all=True,
                          ignore_iof_thr=-1, iou_calculator=dict(type='mmdet.BboxOverlaps2D')),
            sampler=dict(type='mmdet.RandomSampler', num=128, pos_fraction=0.5,
                         neg_pos_ub=-1, add_gt_as_proposals=False),
            qc=dict(num_pairs=32, num_anchors=64, hard_order='index', match_mode='algo1')),
        cascade=dict(
            assigner=dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5,
                          min_pos_iou=0.5, match_low_quality=False, ignore_iof_thr=-1,
                          iou_calculator=dict(type='mmdet.BboxOverlaps2D')),
            sampler=dict(type='mmdet.RandomSampler', num=128, pos_fraction=0.5,
                         neg_pos_ub=-1, add_gt_as_proposals=True)),
        roi_head=dict(pos_iou_thr=0.7, max_per_group=None, gt_only=False)),
    test_cfg=dict(
        path='oc',                                          # test_mode
        qc_cascade_offset='bridge',
        bbox_head=dict(pre_topk=1000, score_thr=0.5, topk=300, nms_iou=0.5,
                       max_per_img=300, qc_topk=100, max_per_query=100),
        cascade=dict(nms_iou=0.5, max_per_img=300, max_per_query=100)))
