# Mask R-CNN + FPN with a Hiera-T backbone, 3x schedule (36 epochs) with the DETR-style
# multi-scale + random-crop training augmentation: the recipe of mmdet's Swin-T
# `ms-crop-3x` config, which this config inherits (pipeline, schedule, AdamW).
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py'

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

# No weight decay on norm layers and position embeddings (see mask-rcnn_hiera-t_fpn_1x_coco.py).
optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.,
        custom_keys={'pos_embed': dict(decay_mult=0.)}))
