# Supplement Table 5 "Ours-QC": SPNet-S fine-tuned (OC) on PRW from COCOPersons QC
# pre-training (spnet-s-qcpt_convnext-t_30e_coco-persons.py), loaded by the spnet.md §5
# rules (teacher, LwF and loss buffers dropped; the QC-untrained bridge starts at zero).
_base_ = './spnet-s_convnext-t_30e_prw.py'
pretrained = 'work_dirs/spnet-s-qcpt_convnext-t_30e_coco-persons/epoch_30.pth'
model = dict(init_cfg=dict(type='SPNetPretrained', checkpoint=pretrained, pretrain_path='qc'))
