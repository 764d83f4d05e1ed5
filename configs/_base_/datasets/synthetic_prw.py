# Copyright (c) mmpsearch contributors. All rights reserved.
# The synthetic person-search set in the PRW raw layout (tools/make_synthetic.py
# --layout prw), read by the real PRWDataset. Frames are 384x288 (one camera 306x230), so
# the SPNet recipe runs at a quarter of the resolution: wrs 288/480 (the native size),
# rrc2 with 256-pixel crops. Generate with:
#   python tools/make_synthetic.py --out data/synthetic_prw --layout prw --seed 0
_base_ = './prw.py'
data_root = 'data/synthetic_prw/'
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
test_dataloader = val_dataloader
