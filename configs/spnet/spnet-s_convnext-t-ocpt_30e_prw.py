# Supplement Table 5 "Ours-OC": SPNet-S fine-tuned (OC) on PRW from COCOPersons OC
# pre-training (spnet-s-ocpt_convnext-t_30e_coco-persons.py), loaded by the spnet.md §5
# rules (teacher, LwF and loss buffers dropped).
_base_ = './spnet-s_convnext-t_30e_prw.py'
pretrained = 'work_dirs/spnet-s-ocpt_convnext-t_30e_coco-persons/epoch_30.pth'
model = dict(init_cfg=dict(type='SPNetPretrained', checkpoint=pretrained, pretrain_path='oc'))
