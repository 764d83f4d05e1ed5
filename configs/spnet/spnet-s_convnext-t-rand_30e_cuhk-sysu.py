# Supplement Table 5 "Random Init.": SPNet-S on CUHK-SYSU from a randomly initialised trunk
# (no ImageNet weights, no pre-training); everything else as SPNet-S.
_base_ = './spnet-s_convnext-t_30e_cuhk-sysu.py'
model = dict(backbone=dict(init_cfg=None))
