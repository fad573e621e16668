# Mask R-CNN + FPN with a Hiera-T backbone, 3x schedule (36 epochs) with the DETR-style
# multi-scale + random-crop training augmentation: the recipe of mmdet's Swin-T
# `ms-crop-3x` config, which this config inherits (pipeline, schedule, AdamW).
# custom_imports, custom_hooks and the hiera_* variables: ../_base_/hiera/hiera.py.
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py', '../_base_/hiera/hiera.py'
]

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

pretrained = {{_base_.hiera_pretrained}}
model = dict(backbone={{_base_.hiera_backbone}}, neck=dict(in_channels={{_base_.hiera_widths}}))

# No weight decay on norm layers and position embeddings (see mask-rcnn_hiera-t_fpn_1x_coco.py).
optim_wrapper = dict(paramwise_cfg={{_base_.hiera_paramwise_replacing}})
