# Supplement Fig. 8 "PT": the c2-sep-d2048 architecture (Table 7) fine-tuned on CUHK-SYSU from
# SPNet-S QC pre-training (C=0, shared heads, d_r 128); separate heads: load_share (conv5 copy
# into loc head 1, NAE projectors re-initialised).
# Cascade layers absent from the checkpoint keep their init.
_base_ = './spnet-c2-sep-d2048_convnext-t_30e_cuhk-sysu.py'
pretrained = 'work_dirs/spnet-s-qcpt_convnext-t_30e_coco-persons/epoch_30.pth'
model = dict(init_cfg=dict(type='SPNetPretrained', checkpoint=pretrained, pretrain_path='qc',
                           load_share=True))
