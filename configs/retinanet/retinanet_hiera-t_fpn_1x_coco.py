# RetinaNet + FPN, Hiera-T (IN1K-finetuned weights), 1x schedule, AdamW: as mmdet's Swin-T
# RetinaNet, the backbone emits only the stages the FPN uses (strides 8-32, P6/P7 from the
# stride-32 input), so no parameter is left without a gradient (which DDP would reject).
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/hiera/hiera.py']

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

pretrained = {{_base_.hiera_pretrained}}
model = dict(
    backbone={{_base_.hiera_backbone_c3}},
    neck=dict(in_channels={{_base_.hiera_widths_c3}}, start_level=0, add_extra_convs='on_input'))

# AdamW (lr 1e-4, wd 0.05) instead of SGD; no weight decay on norm layers and position embeddings.
optim_wrapper = dict(optimizer={{_base_.hiera_adamw}}, paramwise_cfg={{_base_.hiera_paramwise}})
