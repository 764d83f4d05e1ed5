# Copyright (c) mmpsearch contributors. All rights reserved.
# CUHK-SYSU read from its raw files (docs/datasets.md): Image/SSM/*.jpg and annotation/
# (Images.mat, pool.mat, test/train_test/{Train,TestG*}.mat, test/subset/*.mat).
# SPNet recipe (spnet.md §4.2): rrc2 training crops, wrs at test time; batch 8, random
# sampler, drop_last. Test split: the 6,978 pool images, 2,900 queries. In-loop validation
# reads G100 only (the reported protocol; ~4 s to load); the test loader reads every
# protocol file present (G50..G4000, Occlusion, Resolution; ~15-20 s on 2 CPU cores) into
# metainfo['search_protocol'] for the metric's gallery-size sweep.
dataset_type = 'CUHKSYSUDataset'
data_root = 'data/CUHK-SYSU/'
crop_size = 512
short_side, long_side = 900, 1500

train_pipeline = [
    dict(type='LoadPersonSearchImage'),
    dict(type='LoadPersonSearchAnnotations', with_query=False),
    dict(type='WindowResize', short_side=short_side, long_side=long_side),
    dict(type='CenterPad', size=3 * crop_size),
    dict(type='RandomPersonCrop', crop_size=crop_size, focused_prob=0.5, erosion_rate=0.1,
         min_visibility=0.4),
    dict(type='PersonSearchRandomFlip', prob=0.5),
    dict(type='PackPersonSearchInputs')
]
test_pipeline = [
    dict(type='LoadPersonSearchImage'),
    dict(type='LoadPersonSearchAnnotations'),
    dict(type='WindowResize', short_side=short_side, long_side=long_side),
    dict(type='PackPersonSearchInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', test_mode=True,
                 protocols=['G100'], pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', test_mode=True,
                 protocols=None, pipeline=test_pipeline))
val_evaluator = dict(type='PersonSearchMetric')
test_evaluator = val_evaluator
