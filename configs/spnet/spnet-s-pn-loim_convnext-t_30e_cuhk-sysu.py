# SPNet-S with OIMNet++'s components: ProtoNorm (affine-free, released prototype rule) in
# place of BatchNorm in the re-id projection, and LOIM (c = clip(IoU, 0.7, 0.9)) as the
# re-id loss, keeping SPNet's OIM reduction ('spnet'). See docs/oimnetpp.md.
_base_ = './spnet-s_convnext-t_30e_cuhk-sysu.py'
model = dict(
    roi_head=dict(
        norm_cfg=dict(type='ProtoNorm1d', affine=False),
        loss_reid=dict(type='LOIMLoss', iou_lower=0.7, eps=0.1)))
