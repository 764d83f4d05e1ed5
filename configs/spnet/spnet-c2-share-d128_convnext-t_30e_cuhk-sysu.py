# Table 7 / Fig. 8 architecture ablation c2-share-d128: two cascade steps, the shared
# re-id head (d_r = 128) also embeds the proposals.
_base_ = './spnet-s_convnext-t_30e_cuhk-sysu.py'
model = dict(cascade=dict(num_stages=2))
