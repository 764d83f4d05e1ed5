# The quick-start model trained on the query-centric path (spnet.md §4.4): repeat-2 sampler
# (4 images x 2 views per batch), algo1 query-image pairs, re-id on at most 16 detections
# per pair. Evaluated on the OC path like the paper's models, the bridge is untrained here,
# so this config is for checking QC training (its losses), not for search numbers.
_base_ = './spnet-s_convnext-atto_quickstart_synthetic-prw.py'
model = dict(train_cfg=dict(path='qc', roi_head=dict(max_per_group=16)))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='RepeatSampler', num_repeats=2, shuffle=True, seed=0,
                 batch_size=8))
# The OC bridge gets no gradient on the QC path (multi-GPU DDP must allow that).
find_unused_parameters = True
