# OIMNet++ as the paper writes it (docs/oimnetpp.md): ProtoNorm over labelled IDs only
# (Eq. 5), LOIM c = clip(IoU, 0, 0.9) (Eq. 8), lambda_det = 1 for box regression.
_base_ = './oimnetpp_r50-c4_20e_prw.py'
model = dict(
    roi_head=dict(
        reid_head=dict(id_mode='paper'),
        reid_loss=dict(iou_lower=0.0),
        bbox_head=dict(loss_bbox=dict(loss_weight=1.0))))
