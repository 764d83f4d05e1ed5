# SPNet-S query-centric pre-training on COCOPersons (spnet.md §4.4, §4.6, §4.9; supplement
# §8, Table 5 "Ours-QC"): ConvNeXt-T c0-share-d128, rrc_scale 512 crops, batch 4 images x 2
# views (repeat sampler, numpy seed 0 + epoch), algo1 pairs (32 per batch x 64 anchors),
# re-id on GT boxes of both views + at most 16 detections (IoU >= 0.7) per pair against
# the EMA teacher's prototype queue, Mixed LR (trunk 1e-5 / wd 0, rest 1e-4 / 1e-3), AdamW,
# 1000-iteration warm-up + cosine, 30 epochs, AMP, clip 10. Fine-tune from epoch 30.
_base_ = [
    '../_base_/models/spnet-s-pretrain_convnext-t.py', '../_base_/datasets/coco_persons.py',
    '../_base_/schedules/spnet-pretrain_adamw-cosine_30e.py',
    '../_base_/default_runtime.py'
]
model = dict(train_cfg=dict(path='qc'))
train_dataloader = dict(sampler=dict(seed=0))
# The OC bridge gets no gradient on the QC path (multi-GPU DDP must allow that).
find_unused_parameters = True
# Pre-training validation (CUHK-SYSU minival, 'all' protocol) is not provided.
val_dataloader = None
val_cfg = None
val_evaluator = None
