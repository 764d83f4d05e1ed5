# Table 9 "FixedNorm logits (+)" (SPNet-S, no pre-training): the class logit is
# FixedNormLogits of the offset norm with sign 'pos', for the anchors and any
# cascade stage. The baseline "FixedNorm (-)" is spnet-s_convnext-t_30e_cuhk-sysu.py.
_base_ = './spnet-s_convnext-t_30e_cuhk-sysu.py'
model = dict(
    bbox_head=dict(logits=dict(_delete_=True, type='FixedNormLogits', sign='pos')),
    cascade=dict(logits=dict(_delete_=True, type='FixedNormLogits', sign='pos')))
