# Quick QC pre-training on the synthetic COCO-layout set (tools/make_synthetic.py --layout
# coco), sized for a 2-core CPU: the quick-start model (reduced-width ConvNeXt from random
# init, FPN width = stage-3 width, 64-d embeddings, anchors at half SPNet's sizes) with every
# pre-training part of spnet-s-qcpt_convnext-t_30e_coco-persons.py: repeat sampler (4 images
# x 2 views), algo1 pairs (32 x 64 anchors), EMA teacher, prototype queue, Mixed LR.
# CPU-budget departures: 128-pixel rrc_scale crops (synthetic_coco.py); 8 training images
# (2 iterations per epoch; the queue holds every identity after epoch 1), 6 epochs; fp32
# AdamW at lr 2e-3 (trunk 2e-4) with a 2-iteration warm-up; teacher momentum 0.99
# (instead of 0.9999, whose teacher would barely move in a few hundred steps); a
# 4,096-slot queue (the run enqueues fewer prototypes than that); at most 4 detections per
# pair (QC) or image (OC) for re-id.
_base_ = [
    '../_base_/models/spnet-s-pretrain_convnext-t.py',
    '../_base_/datasets/synthetic_coco.py',
    '../_base_/schedules/spnet-pretrain_adamw-cosine_30e.py',
    '../_base_/default_runtime.py'
]
channels = [24, 48, 96, 192]
embed_dim = 64
max_epochs = 6

model = dict(
    backbone=dict(arch=dict(_delete_=True, depths=[1, 1, 2, 1], channels=channels),
                  drop_path_rate=0.0, layer_scale_init_value=1.0, init_cfg=None),
    neck=dict(in_channels=channels[1:], out_channels=channels[2]),
    bbox_head=dict(in_channels=channels[2], embed_dim=embed_dim,
                   anchor_generator=dict(sizes=[[16, 20, 25], [32, 40, 50], [64, 80, 101],
                                                [128, 161, 203], [256, 322, 406]])),
    roi_head=dict(roi_extractor=dict(out_channels=channels[2],
                                     roi_layer=dict(sampling_ratio=1)),
                  loc_dim=embed_dim, reid_dim=embed_dim,
                  loss_reid=dict(queue_size=4096, feat_dim=embed_dim)),
    cascade=dict(embed_dim=embed_dim),
    teacher=dict(momentum=1e-2),
    train_cfg=dict(path='qc', roi_head=dict(max_per_group=4)))

# persistent_workers=False: workers are re-seeded every epoch, so a resumed run repeats the
# uninterrupted one (RNGStateHook).
train_dataloader = dict(batch_size=8, num_workers=1, persistent_workers=False,
                        sampler=dict(seed=0), dataset=dict(indices=8))
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
find_unused_parameters = True
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     constructor='TrainableOptimWrapperConstructor',
                     optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), eps=1e-8,
                                    weight_decay=1e-3),
                     paramwise_cfg=dict(custom_keys={'backbone.': dict(lr_mult=0.1,
                                                                       decay_mult=0.0)}),
                     clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=2),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=6))
log_processor = dict(window_size=1)
