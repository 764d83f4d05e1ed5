# Supplement Table 6 "QC Re-id GT": QC pre-training whose re-id loss saw only GT boxes, then
# SPNet-S OC fine-tuning on PRW.
_base_ = './spnet-s_convnext-t-qcpt_30e_prw.py'
pretrained = 'work_dirs/spnet-s-qcpt-reid-gt_convnext-t_30e_coco-persons/epoch_30.pth'
model = dict(init_cfg=dict(checkpoint=pretrained))
