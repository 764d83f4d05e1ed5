# OIMNet++ = OIMNet + ProtoNorm + LOIM (Table 2 row 5, Table 1), as released: ProtoNorm
# prototypes from labelled IDs + background + each unlabelled box; LOIM c = clip(IoU, 0.7, 0.9).
_base_ = './oimnet-pn_r50-c4_20e_prw.py'
model = dict(roi_head=dict(reid_loss=dict(type='LOIMLoss', iou_lower=0.7, eps=0.1)))
