# OIMNet on mmdet's Faster R-CNN R50-C4 (spec oimnetpp.md §1), vanilla: no normaliser before
# L2, OIM loss (Table 2 row 1). OIMNet++ and the ablations override `roi_head.reid_head.norm`
# and `roi_head.reid_loss`; OIMNet+++ sets `roi_head.shared_head_norm='PN'`.
# Dataset configs set `roi_head.reid_loss.num_person_ids` / `queue_size`.
# ImageNet weights: torchvision's ResNet-50 (the file torchvision 0.8 uses, as released); a
# local path works too. Loaded into the backbone (conv1..layer3) and the conv5 head (layer4);
# the checkpoint's other keys are ignored. Tests null both init_cfg.
pretrained = 'https://download.pytorch.org/models/resnet50-19c8e357.pth'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='OIMNet',
    # Released: conv1.weight, bn1.weight, bn1.bias get requires_grad=False while bn1 still
    # updates its running statistics (spec §1.2); mmdet's frozen_stages=0 would also stop them.
    frozen_parameters=['backbone.conv1.', 'backbone.bn1.'],
    data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor',
        # ImageNet mean/std in RGB (spec §1.1); images are loaded BGR.
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='mmdet.ResNet',
        depth=50,
        num_stages=3,  # stem + layer1..layer3 -> conv4, stride 16, 1024 ch (spec §1.2)
        strides=(1, 2, 2),
        dilations=(1, 1, 1),
        out_indices=(2, ),
        frozen_stages=-1,  # see `frozen_parameters` below: bn1 keeps updating its statistics
        norm_cfg=norm_cfg,
        norm_eval=False,  # released: every BN in train mode, batch statistics
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    rpn_head=dict(
        # mmdet's RPNHead with its loss and proposals in float32 under AMP (anchors and NMS
        # boxes would otherwise be float16/bfloat16; models/dense_heads/float32_rpn_head.py).
        type='Float32RPNHead',
        in_channels=1024,
        feat_channels=1024,
        anchor_generator=dict(
            type='mmdet.AnchorGenerator',
            # Absolute sizes 8/16/32 px = 16 x (0.5, 1, 2) as released (spec §1.3).
            scales=[0.5, 1.0, 2.0],
            ratios=[0.5, 1.0, 2.0],
            strides=[16]),
        bbox_coder=dict(
            type='mmdet.DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='mmdet.SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    roi_head=dict(
        type='OIMNetRoIHead',
        shared_head=dict(
            type='mmdet.ResLayer',
            depth=50,
            stage=3,  # ResNet-50 layer4 as the shared conv5 head (spec §1.5)
            stride=2,
            dilation=1,
            style='pytorch',
            norm_cfg=norm_cfg,
            norm_eval=False,
            init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
        shared_head_norm='BN',
        bbox_roi_extractor=dict(
            type='mmdet.SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=2, aligned=False),
            out_channels=1024,
            featmap_strides=[16]),
        bbox_head=dict(
            type='mmdet.BBoxHead',
            with_avg_pool=False,  # the RoI head max-pools conv5 to 2048-d first
            roi_feat_size=1,
            in_channels=2048,
            num_classes=1,
            bbox_coder=dict(
                type='mmdet.DeltaXYWHBBoxCoder',
                target_means=[0., 0., 0., 0.],
                target_stds=[0.1, 0.1, 0.2, 0.2]),  # weights (10, 10, 5, 5)
            reg_class_agnostic=False,
            # Nested defaults of mmdet modules must carry the scope under default_scope=mmpsearch.
            cls_predictor_cfg=dict(type='mmdet.Linear'),
            reg_predictor_cfg=dict(type='mmdet.Linear'),
            loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            # Released: smooth-L1 beta 1, weight 10 (paper: lambda_det = 1; spec §8 row 4).
            loss_bbox=dict(type='mmdet.SmoothL1Loss', beta=1.0, loss_weight=10.0),
            init_cfg=[
                dict(type='Normal', std=0.01, override=dict(name='fc_cls')),
                dict(type='Normal', std=0.01, override=dict(name='fc_reg'))
            ]),
        reid_head=dict(
            type='EmbeddingProjector',
            in_channels=2048,
            out_channels=256,
            norm='none',
            id_mode='released'),
        reid_loss=dict(
            type='OIMLoss',
            num_person_ids=5532,
            queue_size=5000,
            feat_dim=256,
            scale=30.0,
            momentum=0.5,
            reduction='oimnetpp',
            loss_weight=1.0)),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type='mmdet.MaxIoUAssigner',
                iou_calculator=dict(type='mmdet.BboxOverlaps2D'),
                pos_iou_thr=0.7,
                neg_iou_thr=0.3,
                min_pos_iou=0.0,  # torchvision allow_low_quality_matches, ties included
                match_low_quality=True,
                gt_max_assign_all=True,
                ignore_iof_thr=-1),
            sampler=dict(
                type='mmdet.RandomSampler',
                num=256,
                pos_fraction=0.5,
                neg_pos_ub=-1,
                add_gt_as_proposals=False),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(
            nms_pre=12000,
            max_per_img=2000,
            nms=dict(type='nms', iou_threshold=0.7),
            min_bbox_size=0),
        rcnn=dict(
            assigner=dict(
                type='mmdet.MaxIoUAssigner',
                iou_calculator=dict(type='mmdet.BboxOverlaps2D'),
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0.5,
                match_low_quality=False,
                ignore_iof_thr=-1),
            sampler=dict(
                type='mmdet.RandomSampler',
                num=128,
                pos_fraction=0.5,
                neg_pos_ub=-1,
                add_gt_as_proposals=True),
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        rpn=dict(
            nms_pre=6000,
            max_per_img=300,
            nms=dict(type='nms', iou_threshold=0.7),
            min_bbox_size=0),
        rcnn=dict(
            score_thr=0.5,
            nms=dict(type='nms', iou_threshold=0.4),
            max_per_img=300)))
