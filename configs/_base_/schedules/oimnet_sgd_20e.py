# OIMNet++ schedule (spec oimnetpp.md §4; paper Sec. 4.1): SGD lr 0.003, momentum 0.9,
# weight decay 5e-4, linear warm-up over the first epoch (from 1e-3 x), x0.1 at epoch 16,
# 20 epochs, AMP, gradient clipping at 10. Batch 5 images on one GPU (set by the dataset
# configs' train_dataloader; with N GPUs use batch 5/N per GPU to keep the recipe).
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=20, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    # Per-iteration warm-up through epoch 0 (released: LambdaLR 1e-3 -> 1 over the epoch).
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=20, milestones=[16], gamma=0.1)
]

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(type='SGD', lr=0.003, momentum=0.9, weight_decay=5e-4),
    clip_grad=dict(max_norm=10, norm_type=2))

auto_scale_lr = dict(enable=False, base_batch_size=5)
