# Table 8 "QC-FT": SPNet-S fine-tuned on the query-centric path (spnet.md §4.4): repeat-2
# sampler (4 images x 2 views per batch of 8), algo1 pairs (32 per batch, 64 anchors per
# pair), re-id on at most 16 detections per pair; evaluated on the QC path (§6.2).
_base_ = './spnet-s_convnext-t_30e_cuhk-sysu.py'
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
# QC search costs one head pass per (query, gallery image) pair: search the G100 pairs
# (2,900 x 100) as the paper's Table 8, not the union of G50 ... G4000 (2,900 x 4,000).
val_cfg = dict(type='QCValLoop', protocols=['G100'])
test_cfg = dict(type='QCTestLoop', protocols=['G100'])
