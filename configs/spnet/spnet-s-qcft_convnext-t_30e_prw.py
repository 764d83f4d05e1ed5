# Table 8 "QC-FT": SPNet-S fine-tuned on the query-centric path (spnet.md §4.4): repeat-2
# sampler (4 images x 2 views per batch of 8), algo1 pairs (32 per batch, 64 anchors per
# pair), re-id on at most 16 detections per pair; evaluated on the QC path (§6.2).
_base_ = './spnet-s_convnext-t_30e_prw.py'
model = dict(
    train_cfg=dict(path='qc', roi_head=dict(max_per_group=16)),  # subsample_per_image // 4
    test_cfg=dict(path='qc'))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='RepeatSampler', num_repeats=2, shuffle=True, seed=0,
                 batch_size=8))
# The OC bridge gets no gradient on the QC path (multi-GPU DDP must allow that).
find_unused_parameters = True
# QC evaluation (§6.2): pass 1 embeds every query box, pass 2 searches each gallery image
# with all the queries the protocol assigns to it (QCValLoop / QCTestLoop).
# PRW: every query searches every test frame but its own (2,057 x 6,111 pairs).
val_cfg = dict(type='QCValLoop')
test_cfg = dict(type='QCTestLoop')
