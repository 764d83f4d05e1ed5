# Copyright (c) mmpsearch contributors. All rights reserved.
# PRW read from its raw files (docs/datasets.md): frames/, annotations/*.jpg.mat,
# frame_{train,test}.mat, ID_train.mat, query_info.txt under data_root.
# SPNet recipe (spnet.md §4.2): rrc2 training crops, wrs at test time; batch 8, random
# sampler, drop_last. Test split: 6,112 frames, 2,057 queries, protocols 'standard' and
# 'multi_view' in metainfo['search_protocol'].
# Label maps: 'sorted' (483 LUT rows, SPNet); OIMNet++ configs set label_mode='oimnetpp'
# (482 rows: pids 483 and 932 unlabelled). Box conversion: box_mode='seqnet' (SeqNet/
# OIMNet++); SPNet truncates each number first: box_mode='spnet'.
dataset_type = 'PRWDataset'
data_root = 'data/PRW-v16.04.20/'
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
                 label_mode='sorted', box_mode='seqnet', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', test_mode=True,
                 label_mode='sorted', box_mode='seqnet', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='PersonSearchMetric')
test_evaluator = val_evaluator
