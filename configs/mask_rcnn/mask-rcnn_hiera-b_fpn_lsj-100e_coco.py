# Mask R-CNN + FPN, Hiera-B from MAE pretraining, with the ViTDet recipe as the Hiera paper uses
# it for COCO: LSJ at 1024 x 1024, 100 epochs (25 of a 4x repeated dataset), AdamW, layer-wise lr
# decay, norm layers in the FPN and RoI heads, a 2-conv RPN head. Data and schedule: mmdet's
# common/lsj-100e_coco-instance.py; the model: mmdet's Mask R-CNN R-50 base.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py',
    '../_base_/hiera/hiera.py',
    '../_base_/hiera/hiera-b.py',
]

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

pretrained = {{_base_.hiera_b_mae_pretrained}}

# Group norm in the neck and heads: statistics per image, so the same model runs in one process
# or many (no SyncBN), like ViTDet's LayerNorm-in-heads and mmdet's `gn-all` configs.
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)

model = dict(
    data_preprocessor=dict(
        # every batch padded to the full 1024x1024 canvas (as mmdet's LSJ Mask R-CNN)
        batch_augments=[
            dict(type='BatchFixedSizePad', size={{_base_.image_size}}, pad_mask=True)
        ]),
    # HieraBackbone's default attention='exact' is the pretrained computation; 'windowed' would be
    # faster at 1024.
    backbone={{_base_.hiera_b_mae}},
    neck=dict(in_channels={{_base_.hiera_widths}}, norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead', conv_out_channels=256, norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

# ViTDet evaluates at the training canvas size: longer side 1024.
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale={{_base_.image_size}}, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# Total batch 64 = 32 GPUs x 2 images per GPU (with 8 GPUs: batch_size=8 if memory allows, or
# keep 2 and scale the lr linearly).
train_dataloader = dict(batch_size=2)

# AdamW, weight decay 0.1, lr 3.5e-5 at batch 64 (Hiera-B / B+), mixed precision as ViTDet.
# Layer-wise lr decay (on): MAE weights are not finetuned for recognition, so ViTDet keeps the
# early layers close to them. The rate is applied per Hiera block, lr x rate ** (L + 1 - layer)
# with L = 24 blocks here, twice ViT-B's depth, so ViTDet's 0.7 per ViT block would shrink the
# patch embedding's lr to 0.7 ** 25 ~ 1e-4. We keep ViTDet's end point instead: 0.83 ** 25 ~
# 0.7 ** 13 ~ 1e-2 (an untuned choice, derived, not measured).
# No weight decay on norm layers and position embeddings.
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    constructor='HieraLayerDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=3.5e-5, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(
        layer_decay_rate=0.83,
        norm_decay_mult=0.,
        custom_keys={'pos_embed': dict(decay_mult=0.)}))

# The lr above is meant for batch 64; do not rescale by default.
auto_scale_lr = dict(enable=False, base_batch_size=64)
