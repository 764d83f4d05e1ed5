# Table 7 / Fig. 8 architecture ablation c0-sep-d128: no cascade, a separate loc head
# (stage-4 copy + bias-free Linear -> 128) for the swap path, re-id head d_r = 128.
_base_ = './spnet-s_convnext-t_30e_cuhk-sysu.py'
model = dict(roi_head=dict(num_loc_heads=1))
# The loc head embeds only QC queries and cascade proposals: unused by c0 OC training.
find_unused_parameters = True
