# OIMNet with RoIAlign on PRW (OIMNet++ Table 2 row 1): R50-C4 Faster R-CNN, shared conv5
# head, Linear 2048->256 -> L2 (no normaliser), OIM loss (eta 0.5, scale 30).
# Schedule: SGD 0.003, 1-epoch warm-up, x0.1 at epoch 16, 20 epochs, batch 5, AMP.
_base_ = [
    '../_base_/models/oimnet_r50-c4.py', '../_base_/datasets/prw.py',
    '../_base_/schedules/oimnet_sgd_20e.py', '../_base_/default_runtime.py'
]
model = dict(roi_head=dict(reid_loss=dict(num_person_ids=482, queue_size=500)))

# OIMNet++ input (spec §1.1): whole images resized to short side 900 / long side <= 1500,
# horizontal flip 0.5, nothing else (the dataset base's SPNet crops are replaced).
# PRW label map of OIMNet++: pid - 1 for pid <= 482, so pids 483 and 932 are unlabelled (482
# LUT rows; spec §3.2, §5.2).
train_pipeline = [
    dict(type='LoadPersonSearchImage'),
    dict(type='LoadPersonSearchAnnotations', with_query=False),
    dict(type='WindowResize', short_side=900, long_side=1500),
    dict(type='PersonSearchRandomFlip', prob=0.5),
    dict(type='PackPersonSearchInputs')
]
train_dataloader = dict(
    batch_size=5, num_workers=4, dataset=dict(label_mode='oimnetpp', pipeline=train_pipeline))
# Queries as the OIMNet++/SeqNet loader reads them: the query_info.txt box, truncated.
val_dataloader = dict(dataset=dict(label_mode='oimnetpp', query_box_mode='released'))
test_dataloader = val_dataloader
