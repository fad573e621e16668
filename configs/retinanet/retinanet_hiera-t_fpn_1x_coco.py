# RetinaNet + FPN with a Hiera-T backbone (IN1K-finetuned weights), 1x schedule, AdamW.
# As mmdet's Swin RetinaNet: the backbone emits only the stages the FPN uses (strides 8-32,
# P6/P7 from the stride-32 input), so no parameter is left without a gradient (which DDP
# would reject): out_indices=(1, 2, 3) and start_level=0.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

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
        out_indices=(1, 2, 3),
        out_norm=True,
        frozen_stages=-1,
        drop_path_rate=0.1,
        with_cp=False,
        attention='exact',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768], start_level=0, add_extra_convs='on_input'))

# AdamW (lr 1e-4, wd 0.05) instead of SGD; no weight decay on norm layers and position embeddings.
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., custom_keys={'pos_embed': dict(decay_mult=0.)}))
