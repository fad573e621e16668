# What every MMDetection config of this project shares, listed beside its mmdet base. Apart from
# custom_imports and custom_hooks only variables (two bases may not both define `model`): each
# config puts them in place, e.g. `backbone={{_base_.hiera_backbone}}`. The hiera-<size>.py files
# beside this one hold what a larger backbone changes.

custom_imports = dict(imports=['hiera_mm.mmdet'], allow_failed_imports=False)
# Declared here so that every launcher (ours, mmdet's tools, mim, Runner.from_cfg) gets them.
# (default_hooks.checkpoint is set by each family config: mmdet's runtime base defines
# default_hooks, and two bases may not define the same key.)
custom_hooks = [dict(type='FiniteLossHook'), dict(type='TrustRunCheckpointsHook')]

# Hiera-T with the IN1K-finetuned weights of the Hiera authors. HieraBackbone's defaults do the
# rest: all four stages out (strides 4-32, widths 96-768), each through a LayerNorm, nothing
# frozen, exact attention (the pretrained computation), no activation checkpointing.
# Stochastic depth 0.1: our choice (grows with model size), not tuned.
hiera_pretrained = 'hf://facebook/hiera-tiny-224-hf'
hiera_backbone = dict(
    _delete_=True,  # replaces the base's ResNet / Swin backbone
    type='HieraBackbone',
    arch='tiny',
    drop_path_rate=0.1,
    init_cfg=dict(type='Pretrained', checkpoint=hiera_pretrained))
hiera_widths = [96, 192, 384, 768]  # channels of the four stage maps
# Stages 2-4 only (strides 8-32), for necks that start at stride 8 (RetinaNet, FCOS, ATSS:
# P6/P7 from P5; DINO's ChannelMapper): an unused stage-1 output would leave parameters without
# a gradient, which DDP rejects.
hiera_backbone_c3 = dict(hiera_backbone, out_indices=(1, 2, 3))
hiera_widths_c3 = hiera_widths[1:]

# AdamW as mmdet's Swin configs (lr 1e-4, wd 0.05), in place of the base's optimizer (SGD).
hiera_adamw = dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
# No weight decay on norm layers (by type) and on the position embeddings (`pos_embed`, and
# SAM2's `pos_embed_window`).
hiera_paramwise = dict(norm_decay_mult=0., custom_keys={'pos_embed': dict(decay_mult=0.)})
# The same in place of a base's own parameter-wise settings (Swin's custom keys, which name Swin
# parameters; FCOS's bias settings for SGD).
hiera_paramwise_replacing = dict(hiera_paramwise, _delete_=True)
