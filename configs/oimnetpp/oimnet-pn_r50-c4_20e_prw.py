# OIMNet + ProtoNorm before L2, OIM loss (Table 2 row 3).
_base_ = './oimnet_r50-c4_20e_prw.py'
model = dict(roi_head=dict(reid_head=dict(norm='PN')))
