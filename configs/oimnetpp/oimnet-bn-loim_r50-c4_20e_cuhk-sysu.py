# OIMNet + BatchNorm + LOIM (Table 2 row 4).
_base_ = './oimnet-bn_r50-c4_20e_cuhk-sysu.py'
model = dict(roi_head=dict(reid_loss=dict(type='LOIMLoss', iou_lower=0.7, eps=0.1)))
