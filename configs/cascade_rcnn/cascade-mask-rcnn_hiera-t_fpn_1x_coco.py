# Cascade Mask R-CNN + FPN with a Hiera-T backbone (IN1K-finetuned weights), 1x schedule,
# AdamW as in mmdet's Swin configs (lr 1e-4, wd 0.05).
_base_ = 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['hiera_mm.mmdet'], allow_failed_imports=False)
# Declared here so that every launcher (ours, mmdet's tools, mim, Runner.from_cfg) gets them.
custom_hooks = [dict(type='FiniteLossHook'), dict(type='TrustRunCheckpointsHook')]
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

pretrained = 'hf://facebook/hiera-tiny-224-hf'

model = dict(
    backbone=dict(
        _delete_=True,
        type='HieraBackbone',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        out_norm=True,
        frozen_stages=-1,
        drop_path_rate=0.1,
        with_cp=False,
        attention='exact',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))

# No weight decay on norm layers and position embeddings.
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., custom_keys={'pos_embed': dict(decay_mult=0.)}))
