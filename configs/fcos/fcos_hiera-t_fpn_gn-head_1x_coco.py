# FCOS (GN head) + FPN with a Hiera-T backbone (IN1K-finetuned weights), 1x schedule, AdamW.
# custom_imports, custom_hooks and the hiera_* variables: ../_base_/hiera/hiera.py.
_base_ = ['mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', '../_base_/hiera/hiera.py']

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

pretrained = {{_base_.hiera_pretrained}}
model = dict(
    # The FCOS base normalises for Caffe ResNet weights (BGR, mean only). Hiera was trained on
    # RGB images with ImageNet mean/std. The dataset pipeline loads BGR as always (cv2); the
    # preprocessor flips the channels.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    # Only the stages the FPN uses (strides 8-32; P6/P7 from P5 as in the base), so every
    # parameter gets a gradient: out_indices=(1, 2, 3) with start_level=0.
    backbone={{_base_.hiera_backbone_c3}},
    neck=dict(in_channels={{_base_.hiera_widths_c3}}, start_level=0))

# AdamW (lr 1e-4, wd 0.05) instead of SGD; the base's SGD-specific bias lr x2 / no bias decay
# are dropped, no weight decay on norm layers and position embeddings. The base's gradient
# clipping (max_norm 35) and its 500-iteration constant warmup stay.
optim_wrapper = dict(
    optimizer={{_base_.hiera_adamw}}, paramwise_cfg={{_base_.hiera_paramwise_replacing}})
