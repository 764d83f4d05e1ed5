# Supplement Table 5 "Random Init.": SPNet-S on PRW from a randomly initialised trunk
# (no ImageNet weights, no pre-training); everything else as SPNet-S.
_base_ = './spnet-s_convnext-t_30e_prw.py'
model = dict(backbone=dict(init_cfg=None))
