# Supplement Table 6 "Re-id Only" (reid_only): pre-training optimises only the re-id loss,
# on GT boxes ("with GT boxes"); all detection losses are dropped, so the anchor head,
# bridge and box MLP get no gradient. With GT boxes only, the QC and OC paths give the same
# re-id loss; this config uses the OC path.
_base_ = './spnet-s-ocpt_convnext-t_30e_coco-persons.py'
model = dict(train_cfg=dict(reid_only=True, roi_head=dict(gt_only=True)))
find_unused_parameters = True
