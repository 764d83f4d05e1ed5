# Table 9 "BatchNorm logits (-)" (SPNet-S, no pre-training): the class logit is
# BatchNormLogits of the offset norm with sign 'neg', for the anchors and any
# cascade stage. The baseline "FixedNorm (-)" is spnet-s_convnext-t_30e_prw.py.
_base_ = './spnet-s_convnext-t_30e_prw.py'
model = dict(
    bbox_head=dict(logits=dict(_delete_=True, type='BatchNormLogits', sign='neg')),
    cascade=dict(logits=dict(_delete_=True, type='BatchNormLogits', sign='neg')))
