# Supplement Table 7 / Figure 7 "Uniform LR", OC pre-training: lr 1e-4 / weight decay 1e-3
# for every parameter, trunk included (no paramwise rule).
_base_ = './spnet-s-ocpt_convnext-t_30e_coco-persons.py'
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, custom_keys={}))
