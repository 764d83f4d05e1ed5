# SPNet-L query-centric pre-training on COCOPersons (spnet.md §3.9, §9 "PT L"): ConvNeXt-B
# (drop path 0.5, FPN width 512), but c0-share-d128 like every pre-training config; the
# cascade, separate heads and d_r 2048 exist only at fine-tuning. Crop 512 as the sota
# pre-training config and the supplement (the released SPNet-L checkpoint name says 640,
# spnet.md §11.2).
_base_ = './spnet-s-qcpt_convnext-t_30e_coco-persons.py'
convnext_base_in1k = ('https://download.openmmlab.com/mmclassification/v0/convnext/'
                      'convnext-base_32xb128_in1k_20221207-fbdb5eb9.pth')
fpn_dim = 512
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.5,
                  init_cfg=dict(type='Pretrained', checkpoint=convnext_base_in1k,
                                prefix='backbone.')),
    neck=dict(in_channels=[256, 512, 1024], out_channels=fpn_dim),
    bbox_head=dict(in_channels=fpn_dim),
    roi_head=dict(roi_extractor=dict(out_channels=fpn_dim)))
