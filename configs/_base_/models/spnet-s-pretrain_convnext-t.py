# SPNet-S pre-training model (spnet.md §3.10, §4.3-4.6; supplement §8): c0-share-d128 on
# ConvNeXt-T as SPNet-S, plus the EMA teacher (momentum 0.9999: mmengine's `momentum` is
# the student's weight, 1e-4) that embeds the prototypes of the re-id queue
# (reid_objective: cq; 65,536 slots, scale 10). OC pre-training samples 256 anchors per
# image (2,048 per batch); QC pre-training draws 32 pairs x 64 anchors (2,048 per batch)
# and keeps at most 16 detections per pair for re-id (subsample_per_image // 4).
# TeacherEMAHook updates the teacher after every optimiser step; RNGStateHook checkpoints the
# random generators so that a resumed run repeats the uninterrupted one.
_base_ = './spnet-s_convnext-t.py'

model = dict(
    type='SPNetPretrain',
    teacher=dict(type='TeacherEMA', momentum=1e-4),        # use_moco, moco momentum 0.9999
    lwf=None,                                              # use_classifier_train: False
    freeze_trunk=False,
    roi_head=dict(
        loss_reid=dict(_delete_=True, type='PrototypeQueueLoss', queue_size=65536,
                       feat_dim=128, scale=10.0, loss_weight=1.0)),
    train_cfg=dict(
        reid_only=False,
        bbox_head=dict(sampler=dict(num=256)),             # subsample_per_image (OC PT)
        roi_head=dict(max_per_group=16)))                  # QC: 64 // 4 per pair

custom_hooks = [dict(type='TeacherEMAHook'), dict(type='RNGStateHook')]
