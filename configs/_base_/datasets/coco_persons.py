# Copyright (c) mmpsearch contributors. All rights reserved.
# COCOPersons for SPNet pre-training (spnet.md §8.3, §4.1-4.2): the non-crowd person boxes
# of COCO train2017, every box its own identity; rrc_scale augmentation (random scale,
# pad to 4·crop, focused / box-safe crop, flip) and the repeat sampler: each image twice in
# a row, independently augmented, so a batch of 8 holds 4 images x 2 views.
# scale_mode='released' draws the scale from U(1.5, 3.0) as the released code does
# (albumentations adds 1 to the limits); scale_mode='paper' uses the paper's 0.5-2x.
# Pre-training validation (CUHK-SYSU minival, 'all' protocol) is not provided here.
dataset_type = 'COCOPersonsDataset'
data_root = 'data/coco/'
crop_size = 512
scale_mode = 'released'

train_pipeline = [
    dict(type='LoadPersonSearchImage'),
    dict(type='LoadPersonSearchAnnotations', with_query=False),
    dict(type='RandomScale', scale_mode=scale_mode),
    dict(type='CenterPad', size=4 * crop_size),
    dict(type='RandomPersonCrop', crop_size=crop_size, focused_prob=0.5, erosion_rate=0.1,
         min_visibility=0.4),
    dict(type='PersonSearchRandomFlip', prob=0.5),
    dict(type='PackPersonSearchInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='RepeatSampler', num_repeats=2, shuffle=True, batch_size=8),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img_path='train2017/'), pipeline=train_pipeline))
