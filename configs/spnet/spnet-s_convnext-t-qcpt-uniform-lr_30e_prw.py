# Supplement Fig. 7, QC pre-training with Uniform LR (1e-4 / 1e-3 everywhere) (Table 7), then
# SPNet-S OC
# fine-tuning on PRW. "Mixed LR" is spnet-s_convnext-t-qcpt_30e_prw.py.
_base_ = './spnet-s_convnext-t-qcpt_30e_prw.py'
pretrained = 'work_dirs/spnet-s-qcpt-uniform-lr_convnext-t_30e_coco-persons/epoch_30.pth'
model = dict(init_cfg=dict(checkpoint=pretrained))
