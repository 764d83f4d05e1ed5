# SPNet-L (ConvNeXt-B, c2-sep-d2048) fine-tuned OC on CUHK-SYSU with 1024-pixel rrc2 crops
# (spnet.md §9 "FT L"); the paper reports 96.4 mAP / 97.0 top-1 after QC pre-training.
_base_ = [
    '../_base_/models/spnet-l_convnext-b.py', '../_base_/datasets/cuhk_sysu.py',
    '../_base_/schedules/spnet_adamw-cosine_30e.py', '../_base_/default_runtime.py'
]
crop_size = 1024  # aug_crop_res
model = dict(roi_head=dict(loss_reid=dict(num_person_ids=5532, queue_size=5000)))
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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# retrieval_name_list: ('G100',)
val_evaluator = dict(type='PersonSearchMetric', protocols=['G100'])
test_evaluator = val_evaluator
