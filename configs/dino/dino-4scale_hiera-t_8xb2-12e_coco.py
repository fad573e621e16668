# DINO (4 scales) with a Hiera-T backbone (IN1K-finetuned weights), 12 epochs, 8 GPUs x 2 images.
# custom_imports, custom_hooks and the hiera_* variables: ../_base_/hiera/hiera.py.
_base_ = ['mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py', '../_base_/hiera/hiera.py']

default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

pretrained = {{_base_.hiera_pretrained}}
model = dict(
    # Pad batches to multiples of 32 (the base pads to 1): then Hiera never pads internally and
    # DINO's padding masks, resized to each feature map, line up with the features exactly.
    data_preprocessor=dict(pad_size_divisor=32),
    # Stages 2-4 (strides 8, 16, 32); the ChannelMapper adds the fourth, stride-64 level.
    backbone={{_base_.hiera_backbone_c3}},
    neck=dict(in_channels={{_base_.hiera_widths_c3}}))

# DINO's AdamW (lr 1e-4, wd 1e-4, grad clip 0.1) with the backbone at lr x 0.1 (inherited key
# 'backbone'), and no weight decay on norm layers and position embeddings. mmengine applies only
# the longest matching custom key to a parameter (and then skips norm_decay_mult), so the
# backbone's position embeddings and LayerNorms get keys of their own that keep lr x 0.1.
backbone_no_decay = dict(lr_mult=0.1, decay_mult=0.)
optim_wrapper = dict(
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={
            'backbone.trunk.pos_embed': backbone_no_decay,  # also SAM2's pos_embed_window
            'backbone.out_norms': backbone_no_decay,
            # the two LayerNorms of every Hiera block, backbone.trunk.blocks.{g}.norm{1,2}
            '.norm1.weight': backbone_no_decay,
            '.norm1.bias': backbone_no_decay,
            '.norm2.weight': backbone_no_decay,
            '.norm2.bias': backbone_no_decay,
        }))
