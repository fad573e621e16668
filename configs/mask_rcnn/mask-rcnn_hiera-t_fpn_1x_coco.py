# Mask R-CNN + FPN with a Hiera-T backbone (IN1K-finetuned weights), 1x schedule.
# Recipe of mmdet's Swin-T Mask R-CNN 1x config (AdamW, lr 1e-4, wd 0.05, 1000-iter warmup),
# which this config inherits; only the backbone and the parameter-wise settings differ.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'

custom_imports = dict(imports=['hiera_mm.mmdet'], allow_failed_imports=False)
# Declared here so that every launcher (ours, mmdet's tools, mim, Runner.from_cfg) gets them.
custom_hooks = [dict(type='FiniteLossHook'), dict(type='TrustRunCheckpointsHook')]
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

pretrained = 'hf://facebook/hiera-tiny-224-hf'

model = dict(
    # The inherited data_preprocessor is what Hiera was trained with: RGB, ImageNet mean/std,
    # padding to multiples of 32 (= Hiera's mask-unit grid, so the backbone never pads itself).
    backbone=dict(
        _delete_=True,
        type='HieraBackbone',
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        out_norm=True,
        frozen_stages=-1,
        drop_path_rate=0.1,
        with_cp=False,
        attention='exact',  # the pretrained computation (global attention in stages 3-4)
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))

# AdamW(lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05) comes from the Swin base. Swin's
# custom_keys name Swin parameters; Hiera's: no weight decay on any norm layer (by type) and on
# the position embeddings (`pos_embed`, and SAM2's `pos_embed_window`).
optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.,
        custom_keys={'pos_embed': dict(decay_mult=0.)}))
