# Quick OC pre-training on the synthetic COCO-layout set: the quick QC pre-training config
# on the OC path (256 sampled anchors per image, as spnet-s-ocpt_convnext-t_30e_coco-persons).
_base_ = './spnet-s-qcpt_convnext-atto_quick_synthetic-coco.py'
model = dict(train_cfg=dict(path='oc'))
find_unused_parameters = False
