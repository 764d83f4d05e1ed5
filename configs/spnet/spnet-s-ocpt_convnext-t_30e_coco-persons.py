# SPNet-S object-centric pre-training on COCOPersons (spnet.md §4.3, §4.6, §4.9; supplement
# §8, Table 5 "Ours-OC"): as the QC pre-training config but on the OC path, with 256
# sampled anchors per image (2,048 per batch, the QC budget of 32 pairs x 64 anchors).
_base_ = './spnet-s-qcpt_convnext-t_30e_coco-persons.py'
model = dict(train_cfg=dict(path='oc'))
find_unused_parameters = False
