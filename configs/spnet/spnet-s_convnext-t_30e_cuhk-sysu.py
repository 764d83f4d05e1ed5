# SPNet-S (ConvNeXt-T, c0-share-d128) fine-tuned OC on CUHK-SYSU: 30 epochs, batch 8,
# rrc2 512 crops, AdamW 1e-4 / 5e-4, AMP, grad clip 10 (spnet.md §9 "FT S").
# From ImageNet weights this is the supplement's Table 5 "Classifier" row (91.9 mAP);
# with QC pre-training the paper reports 93.3 mAP / 94.1 top-1.
_base_ = [
    '../_base_/models/spnet-s_convnext-t.py', '../_base_/datasets/cuhk_sysu.py',
    '../_base_/schedules/spnet_adamw-cosine_30e.py', '../_base_/default_runtime.py'
]
# OIM: 5,532 labelled training identities, 5,000-slot queue (oim_cq_size).
model = dict(roi_head=dict(loss_reid=dict(num_person_ids=5532, queue_size=5000)))
# retrieval_name_list: ('G100',)
val_evaluator = dict(type='PersonSearchMetric', protocols=['G100'])
test_evaluator = val_evaluator
