# Supplement Table 6 "Re-id Only": pre-training with the re-id loss alone (GT boxes), then SPNet-S
# OC fine-tuning on CUHK-SYSU.
_base_ = './spnet-s_convnext-t-ocpt_30e_cuhk-sysu.py'
pretrained = 'work_dirs/spnet-s-ocpt-reid-only_convnext-t_30e_coco-persons/epoch_30.pth'
model = dict(init_cfg=dict(checkpoint=pretrained))
