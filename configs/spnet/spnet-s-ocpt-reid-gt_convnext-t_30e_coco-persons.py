# Supplement Table 6 "OC Re-id GT" (reid_gt_only): the re-id loss of OC pre-training
# uses the GT boxes of both views only, no detected boxes.
_base_ = './spnet-s-ocpt_convnext-t_30e_coco-persons.py'
model = dict(train_cfg=dict(roi_head=dict(gt_only=True)))
