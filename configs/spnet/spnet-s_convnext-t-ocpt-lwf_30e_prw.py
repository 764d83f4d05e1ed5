# Supplement Fig. 7, OC pre-training with Mixed LR + LwF (Table 7), then SPNet-S OC
# fine-tuning on PRW. "Mixed LR" is spnet-s_convnext-t-ocpt_30e_prw.py.
_base_ = './spnet-s_convnext-t-ocpt_30e_prw.py'
pretrained = 'work_dirs/spnet-s-ocpt-lwf_convnext-t_30e_coco-persons/epoch_30.pth'
model = dict(init_cfg=dict(checkpoint=pretrained))
