# OIMNet++ (R50-C4, ProtoNorm + LOIM, as released) on the synthetic PRW-layout set
# (python tools/make_synthetic.py --out data/synthetic_prw --layout prw --seed 0), sized for a
# 2-core CPU: frames resized to short side 160 (they are 384x288), RoIAlign 7x7 instead of
# 14x14 (conv5 then runs on 4x4 maps; it dominates the cost), 16 sampled RoIs per image,
# batch 2, 300 training / 50 test proposals, random init (nothing is downloaded), fp32
# AdamW with a short warm-up (plain SGD from random init needs far more iterations).
# Everything else (anchors, conv5 head, ProtoNorm, LOIM, loss weights, test thresholds) is
# OIMNet++.
_base_ = [
    '../_base_/models/oimnet_r50-c4.py', '../_base_/datasets/synthetic_prw.py',
    '../_base_/schedules/oimnet_sgd_20e.py', '../_base_/default_runtime.py'
]
short_side, long_side = 160, 320
max_epochs = 3

model = dict(
    backbone=dict(init_cfg=None),
    roi_head=dict(
        shared_head=dict(init_cfg=None),
        bbox_roi_extractor=dict(roi_layer=dict(output_size=7)),
        reid_head=dict(norm='PN'),
        # 100 training identities in the default synthetic set (ID_train.mat).
        reid_loss=dict(type='LOIMLoss', iou_lower=0.7, eps=0.1, num_person_ids=100,
                       queue_size=500)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=2000, max_per_img=300),
                   rcnn=dict(sampler=dict(num=16))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=50)))

train_pipeline = [
    dict(type='LoadPersonSearchImage'),
    dict(type='LoadPersonSearchAnnotations', with_query=False),
    dict(type='WindowResize', short_side=short_side, long_side=long_side),
    dict(type='PersonSearchRandomFlip', prob=0.5),
    dict(type='PackPersonSearchInputs')
]
test_pipeline = [
    dict(type='LoadPersonSearchImage'),
    dict(type='LoadPersonSearchAnnotations'),
    dict(type='WindowResize', short_side=short_side, long_side=long_side),
    dict(type='PackPersonSearchInputs')
]
train_dataloader = dict(batch_size=2, num_workers=1, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=5e-4),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True)
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=max_epochs))
log_processor = dict(window_size=10)
# The untrained model is evaluated first: the baseline next to the trained numbers.
custom_hooks = [dict(type='EvaluateBeforeTrainHook')]
