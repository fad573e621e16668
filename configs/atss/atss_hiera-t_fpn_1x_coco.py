# ATSS + FPN with a Hiera-T backbone (IN1K-finetuned weights), 1x schedule, AdamW.
# custom_imports, custom_hooks and the hiera_* variables: ../_base_/hiera/hiera.py.
_base_ = ['mmdet::atss/atss_r50_fpn_1x_coco.py', '../_base_/hiera/hiera.py']

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

pretrained = {{_base_.hiera_pretrained}}
model = dict(
    # Only the stages the FPN uses (strides 8-32; P6/P7 from P5 as in the base), so every
    # parameter gets a gradient: out_indices=(1, 2, 3) with start_level=0.
    backbone={{_base_.hiera_backbone_c3}},
    neck=dict(in_channels={{_base_.hiera_widths_c3}}, start_level=0))

# AdamW (lr 1e-4, wd 0.05) instead of SGD; no weight decay on norm layers and position embeddings.
optim_wrapper = dict(optimizer={{_base_.hiera_adamw}}, paramwise_cfg={{_base_.hiera_paramwise}})
