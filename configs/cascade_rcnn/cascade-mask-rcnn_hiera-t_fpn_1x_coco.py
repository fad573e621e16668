# Cascade Mask R-CNN + FPN with a Hiera-T backbone (IN1K-finetuned weights), 1x schedule,
# AdamW as in mmdet's Swin configs (lr 1e-4, wd 0.05).
# custom_imports, custom_hooks and the hiera_* variables: ../_base_/hiera/hiera.py.
_base_ = ['mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py', '../_base_/hiera/hiera.py']

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

pretrained = {{_base_.hiera_pretrained}}
model = dict(backbone={{_base_.hiera_backbone}}, neck=dict(in_channels={{_base_.hiera_widths}}))

# AdamW (lr 1e-4, wd 0.05) instead of SGD; no weight decay on norm layers and position embeddings.
optim_wrapper = dict(optimizer={{_base_.hiera_adamw}}, paramwise_cfg={{_base_.hiera_paramwise}})
