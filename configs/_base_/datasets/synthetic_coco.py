# Copyright (c) mmpsearch contributors. All rights reserved.
# The synthetic set in the COCO layout (tools/make_synthetic.py --layout coco): crowded
# 384x288 frames of unlabelled people, read by the real COCOPersonsDataset. The rrc_scale
# recipe runs at a quarter of SPNet's size: 128-pixel crops of a canvas padded to 4 x crop
# after the random scale (the paper's 0.5-2x: the frames are smaller than COCO's, so the
# released 1.5-3x would put most people beyond the crop). Generate with:
#   python tools/make_synthetic.py --out data/synthetic_coco --layout coco --seed 0
_base_ = './coco_persons.py'
data_root = 'data/synthetic_coco/'
crop_size = 128

train_pipeline = [
    dict(type='LoadPersonSearchImage'),
    dict(type='LoadPersonSearchAnnotations', with_query=False),
    dict(type='RandomScale', scale_mode='paper'),
    dict(type='CenterPad', size=4 * crop_size),
    dict(type='RandomPersonCrop', crop_size=crop_size, focused_prob=0.5, erosion_rate=0.1,
         min_visibility=0.4),
    dict(type='PersonSearchRandomFlip', prob=0.5),
    dict(type='PackPersonSearchInputs')
]
train_dataloader = dict(
    num_workers=2,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
