# Copyright (c) mmpsearch contributors. All rights reserved.
# The synthetic person-search set in the CUHK-SYSU raw layout (tools/make_synthetic.py
# --layout cuhk: TestG50/TestG100, Occlusion, Resolution), read by the real
# CUHKSYSUDataset. Same small-resolution recipe as synthetic_prw.py. Generate with:
#   python tools/make_synthetic.py --out data/synthetic_cuhk --layout cuhk --seed 0
_base_ = './cuhk_sysu.py'
data_root = 'data/synthetic_cuhk/'
crop_size = 256
short_side, long_side = 288, 480

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
    num_workers=2,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
