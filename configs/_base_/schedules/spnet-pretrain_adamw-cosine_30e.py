# SPNet pre-training optimisation, "Mixed LR" (spnet.md §4.9; supplement Table 7): AdamW,
# ConvNeXt trunk (`backbone.*`) lr 1e-5 / weight decay 0, everything else (FPN, anchor conv,
# bridge, MLPs, RoI stage-4 copies, NAE, LwF classifier) lr 1e-4 / wd 1e-3; fp16 AMP, clip
# 10, 1000-iteration warm-up and cosine, 30 epochs. The teachers hold no gradients and are
# left out of the optimiser by TrainableOptimWrapperConstructor.
_base_ = './spnet_adamw-cosine_30e.py'

optim_wrapper = dict(
    constructor='TrainableOptimWrapperConstructor',
    optimizer=dict(lr=1e-4, weight_decay=1e-3),
    paramwise_cfg=dict(custom_keys={'backbone.': dict(lr_mult=0.1, decay_mult=0.0)}))
