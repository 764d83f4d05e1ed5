# The quick-start model trained and evaluated on the query-centric path (spnet.md §4.4,
# §6.2), the CPU counterpart of Table 8's "QC-FT": repeat-2 sampler (4 images x 2 views
# per batch), algo1 query-image pairs, re-id on at most 16 detections per pair; QC search
# at validation and test time (QCValLoop / QCTestLoop: each gallery frame is detected once
# per query). The same checkpoint can be evaluated object-centrically with the OC config
# (spnet-s_convnext-atto_quickstart_synthetic-prw.py), whose bridge is then untrained.
_base_ = './spnet-s_convnext-atto_quickstart_synthetic-prw.py'
model = dict(train_cfg=dict(path='qc', roi_head=dict(max_per_group=16)),
             test_cfg=dict(path='qc'))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='RepeatSampler', num_repeats=2, shuffle=True, seed=0,
                 batch_size=8))
# The OC bridge gets no gradient on the QC path (multi-GPU DDP must allow that).
find_unused_parameters = True
val_cfg = dict(type='QCValLoop')
test_cfg = dict(type='QCTestLoop')
