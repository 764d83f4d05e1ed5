# Supplement Table 7 / Figure 7 "Frozen-BB", QC pre-training: the ConvNeXt trunk runs under
# no_grad and is left out of the optimiser (its stochastic depth stays active); everything
# after it trains at lr 1e-4 / weight decay 1e-3.
_base_ = './spnet-s-qcpt_convnext-t_30e_coco-persons.py'
model = dict(freeze_trunk=True)
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, custom_keys={}))
