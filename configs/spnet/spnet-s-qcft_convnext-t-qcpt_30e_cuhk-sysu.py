# Supplement Table 8 "QC-FT+PT": QC fine-tuning (and QC evaluation) on CUHK-SYSU from
# COCOPersons QC pre-training.
_base_ = './spnet-s-qcft_convnext-t_30e_cuhk-sysu.py'
pretrained = 'work_dirs/spnet-s-qcpt_convnext-t_30e_coco-persons/epoch_30.pth'
model = dict(init_cfg=dict(type='SPNetPretrained', checkpoint=pretrained, pretrain_path='qc'))
