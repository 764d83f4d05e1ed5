# SPNet-L model = c2-sep-d2048 on ConvNeXt-B (spnet.md §3.9): FPN width 512, two cascade
# steps, separate loc heads (one per step), re-id dimension 2048. Everything else as SPNet-S.
_base_ = './spnet-s_convnext-t.py'

convnext_base_in1k = ('https://download.openmmlab.com/mmclassification/v0/convnext/'
                      'convnext-base_32xb128_in1k_20221207-fbdb5eb9.pth')
fpn_dim = 512
reid_dim = 2048

model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.5,  # torchvision default stochastic depth of ConvNeXt-B
        init_cfg=dict(type='Pretrained', checkpoint=convnext_base_in1k, prefix='backbone.')),
    neck=dict(in_channels=[256, 512, 1024], out_channels=fpn_dim),
    bbox_head=dict(in_channels=fpn_dim),
    roi_head=dict(
        roi_extractor=dict(out_channels=fpn_dim),
        reid_dim=reid_dim,
        num_loc_heads=2,                                    # emb_align_sep: True
        loss_reid=dict(feat_dim=reid_dim)),
    cascade=dict(num_stages=2))                            # num_cascade_steps: 2
