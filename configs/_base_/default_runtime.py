# Runtime defaults shared by every mmpsearch config.
# default_scope='mmpsearch': mmpsearch types are unprefixed, mmdet types carry 'mmdet.',
# mmpretrain types 'mmpretrain.'; mmengine hooks/optimizers/schedulers resolve unprefixed.
default_scope = 'mmpsearch'
# mmpsearch first: it installs the torchvision stand-in before mmpretrain.models imports.
custom_imports = dict(imports=['mmpsearch', 'mmpretrain.models'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='mmdet.DetVisualizationHook'),
    # CPU runs: denormal gradients make convolution backward ~5x slower (the hook's
    # docstring); no effect on CUDA. Switch off with dict(type=..., enable=False).
    flush_denormal=dict(type='FlushDenormalHook'),
    # Stop at the first NaN/inf loss or gradient (a step the AMP loss scaler skips is not
    # an error) and never write a checkpoint holding non-finite tensors (docs/design.md).
    # Switch off with non_finite=None.
    non_finite=dict(type='NonFiniteCheckHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='mmdet.DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
