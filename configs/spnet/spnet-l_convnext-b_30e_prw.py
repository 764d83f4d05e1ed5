# SPNet-L (ConvNeXt-B, c2-sep-d2048) fine-tuned OC on PRW with 1024-pixel rrc2 crops
# (spnet.md §9 "FT L"); the paper reports 61.2 mAP / 90.9 top-1 after QC pre-training.
_base_ = [
    '../_base_/models/spnet-l_convnext-b.py', '../_base_/datasets/prw.py',
    '../_base_/schedules/spnet_adamw-cosine_30e.py', '../_base_/default_runtime.py'
]
crop_size = 1024  # aug_crop_res
model = dict(roi_head=dict(loss_reid=dict(num_person_ids=483, queue_size=500)))
train_pipeline = [
    dict(type='LoadPersonSearchImage'),
    dict(type='LoadPersonSearchAnnotations', with_query=False),
    dict(type='WindowResize', short_side=900, long_side=1500),
    dict(type='CenterPad', size=3 * crop_size),
    dict(type='RandomPersonCrop', crop_size=crop_size, focused_prob=0.5, erosion_rate=0.1,
         min_visibility=0.4),
    dict(type='PersonSearchRandomFlip', prob=0.5),
    dict(type='PackPersonSearchInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, box_mode='spnet'))
val_dataloader = dict(dataset=dict(box_mode='spnet'))
test_dataloader = val_dataloader
# retrieval_name_list: ('test',) = all test frames but the query's own
val_evaluator = dict(type='PersonSearchMetric', protocols=['standard'])
test_evaluator = val_evaluator
