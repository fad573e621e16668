# Mask R-CNN + FPN with a Hiera-T backbone (IN1K-finetuned weights), 1x schedule.
# Recipe of mmdet's Swin-T Mask R-CNN 1x config (AdamW, lr 1e-4, wd 0.05, 1000-iter warmup),
# which this config inherits; only the backbone and the parameter-wise settings differ.
# custom_imports, custom_hooks and the hiera_* variables: ../_base_/hiera/hiera.py.
_base_ = ['mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', '../_base_/hiera/hiera.py']

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

pretrained = {{_base_.hiera_pretrained}}
# The inherited data_preprocessor is what Hiera was trained with: RGB, ImageNet mean/std,
# padding to multiples of 32 (= Hiera's mask-unit grid, so the backbone never pads itself).
model = dict(backbone={{_base_.hiera_backbone}}, neck=dict(in_channels={{_base_.hiera_widths}}))

# AdamW(lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05) comes from the Swin base. Swin's
# custom_keys name Swin parameters; Hiera's: no weight decay on any norm layer (by type) and on
# the position embeddings (`pos_embed`, and SAM2's `pos_embed_window`).
optim_wrapper = dict(paramwise_cfg={{_base_.hiera_paramwise_replacing}})
