# SPNet-L object-centric pre-training on COCOPersons: the SPNet-L QC pre-training config on
# the OC path (256 sampled anchors per image).
_base_ = './spnet-l-qcpt_convnext-b_30e_coco-persons.py'
model = dict(train_cfg=dict(path='oc'))
find_unused_parameters = False
