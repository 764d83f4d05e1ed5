# OIMNet + BatchNorm before L2 (Table 2 row 2). BN1d without affine (UNCONFIRMED in the paper).
_base_ = './oimnet_r50-c4_20e_prw.py'
model = dict(roi_head=dict(reid_head=dict(norm='BN')))
