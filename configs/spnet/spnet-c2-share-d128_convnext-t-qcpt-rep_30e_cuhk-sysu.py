# Supplement Fig. 8 "PT-Rep": as spnet-c2-share-d128_convnext-t-qcpt_30e_cuhk-sysu.py, with the
# stage-0 weights replicated into the cascade stages (spnet.md §5 rule 5).
_base_ = './spnet-c2-share-d128_convnext-t-qcpt_30e_cuhk-sysu.py'
model = dict(init_cfg=dict(replicate_cascade=True))
