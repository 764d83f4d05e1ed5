# SPNet-S (ConvNeXt-T, c0-share-d128) fine-tuned OC on PRW: 30 epochs, batch 8, rrc2 512
# crops, AdamW 1e-4 / 5e-4, AMP, grad clip 10 (spnet.md §9 "FT S"). From ImageNet weights
# this is Table 5 "Classifier" (52.7 mAP); with QC pre-training 55.6 mAP / 89.5 top-1.
_base_ = [
    '../_base_/models/spnet-s_convnext-t.py', '../_base_/datasets/prw.py',
    '../_base_/schedules/spnet_adamw-cosine_30e.py', '../_base_/default_runtime.py'
]
# OIM: the 483 rows of the sorted training label map (label_mode='sorted'), 500-slot queue.
model = dict(roi_head=dict(loss_reid=dict(num_person_ids=483, queue_size=500)))
# SPNet converts PRW's [x, y, w, h] by truncating each number first (box_mode='spnet').
train_dataloader = dict(dataset=dict(box_mode='spnet'))
val_dataloader = dict(dataset=dict(box_mode='spnet'))
test_dataloader = val_dataloader
# retrieval_name_list: ('test',) = all test frames but the query's own
val_evaluator = dict(type='PersonSearchMetric', protocols=['standard'])
test_evaluator = val_evaluator
