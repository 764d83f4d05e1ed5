# SPNet-L (c2-sep-d2048, ConvNeXt-B) fine-tuned on PRW from COCOPersons QC pre-training
# (spnet-l-qcpt_convnext-b_30e_coco-persons.py): the paper's main SPNet-L result. The
# shared-head, C=0 pre-trained model is loaded with load_share (the conv5 copy also into
# loc head 1, NAE projectors re-initialised: 128 -> 2048) and replicate_cascade ("PT-Rep":
# stage-0 regression into both cascade stages, loc head 1 into loc head 2), spnet.md §5.
_base_ = './spnet-l_convnext-b_30e_prw.py'
pretrained = 'work_dirs/spnet-l-qcpt_convnext-b_30e_coco-persons/epoch_30.pth'
model = dict(init_cfg=dict(type='SPNetPretrained', checkpoint=pretrained, pretrain_path='qc',
                           load_share=True, replicate_cascade=True))
