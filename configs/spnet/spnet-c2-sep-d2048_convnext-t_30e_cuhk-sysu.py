# Table 7 / Fig. 8 architecture ablation c2-sep-d2048 on ConvNeXt-T with 512 crops (the
# SPNet-L architecture on the small backbone, configs/baseline/cascade of the release).
_base_ = './spnet-s_convnext-t_30e_cuhk-sysu.py'
model = dict(cascade=dict(num_stages=2),
             roi_head=dict(num_loc_heads=2, reid_dim=2048, loss_reid=dict(feat_dim=2048)))
