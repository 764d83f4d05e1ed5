# Table 7 / Fig. 8 architecture ablation c2-sep-d128: two cascade steps with one loc head
# per step, re-id head d_r = 128.
_base_ = './spnet-s_convnext-t_30e_cuhk-sysu.py'
model = dict(cascade=dict(num_stages=2), roi_head=dict(num_loc_heads=2))
