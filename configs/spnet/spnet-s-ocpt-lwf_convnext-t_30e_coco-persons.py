# Supplement Table 7 / Figure 7 "Mixed LR + LwF", OC pre-training (released bb-lr-lwf):
# Mixed LR plus the LwF loss (spnet.md §4.7): ImageNet logits of the trunk (avgpool C5 ->
# the ConvNeXt classifier from the trunk's ImageNet checkpoint) distilled from a frozen copy
# of the initial trunk and classifier, T = 2, weight 1, the released BCE-on-log-softmax
# formula (formula='kl' gives the standard distillation loss).
_base_ = './spnet-s-ocpt_convnext-t_30e_coco-persons.py'
convnext_tiny_in1k = ('https://download.openmmlab.com/mmclassification/v0/convnext/'
                      'convnext-tiny_32xb128_in1k_20221207-998cf3e9.pth')
model = dict(
    lwf=dict(_delete_=True,
             classifier=dict(type='ConvNeXtClassifier', num_classes=1000,
                             checkpoint=convnext_tiny_in1k),
             loss=dict(type='LwFLoss', temperature=2.0, formula='released',
                       loss_weight=1.0)))
