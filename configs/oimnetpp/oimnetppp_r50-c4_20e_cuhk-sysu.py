# OIMNet+++ (Table 1, "R50-ProtoNorm"): OIMNet++ with every BatchNorm of the conv5 head
# replaced by an affine ProtoNorm2d initialised from it (spec oimnetpp.md §2.6).
_base_ = './oimnetpp_r50-c4_20e_cuhk-sysu.py'
model = dict(roi_head=dict(shared_head_norm='PN'))
