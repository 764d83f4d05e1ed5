# Supplement Table 6 "OC Re-id GT": OC pre-training whose re-id loss saw only GT boxes, then
# SPNet-S OC fine-tuning on PRW.
_base_ = './spnet-s_convnext-t-ocpt_30e_prw.py'
pretrained = 'work_dirs/spnet-s-ocpt-reid-gt_convnext-t_30e_coco-persons/epoch_30.pth'
model = dict(init_cfg=dict(checkpoint=pretrained))
