# Mask2Former, Hiera-T (IN1K-finetuned weights), ADE20K 512 x 512, 160k iterations at 8 x 2: the
# recipe of mmseg's Swin-T Mask2Former config, which this inherits (AdamW lr 1e-4, wd 0.05, grad
# clip 0.01, backbone at lr x 0.1, poly decay). Only the backbone, the pixel decoder's input
# widths and the parameter-wise keys (Swin's name Swin parameters) differ.
_base_ = [
    'mmseg::mask2former/mask2former_swin-t_8xb2-160k_ade20k-512x512.py',
    '../_base_/hiera.py',
]

# ../_base_/hiera.py's hiera_custom_imports plus the base's mmdet.models (mmseg's Mask2Former
# head is mmdet's).
custom_imports = dict(imports=['mmseg', 'hiera_mm.mmseg', 'mmdet.models'],
                      allow_failed_imports=False)
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

pretrained = {{_base_.hiera_pretrained}}
model = dict(
    backbone={{_base_.hiera_backbone}},
    decode_head=dict(in_channels={{_base_.hiera_widths}}))

# As the Swin recipe: every backbone tensor at lr x 0.1; no weight decay on the backbone's norms
# and position embeddings (which stay at lr x 0.1) nor on the head's query / level embeddings.
# mmengine applies only the longest matching custom key to a parameter (and then skips
# norm_decay_mult), so the backbone's norms and position embeddings get keys of their own.
backbone_no_decay = dict(lr_mult=0.1, decay_mult=0.0)
embed_no_decay = dict(lr_mult=1.0, decay_mult=0.0)
optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.0,
        custom_keys={
            'backbone': dict(lr_mult=0.1, decay_mult=1.0),
            'backbone.trunk.pos_embed': backbone_no_decay,  # also SAM2's pos_embed_window
            'backbone.out_norms': backbone_no_decay,
            # the two LayerNorms of every Hiera block, backbone.trunk.blocks.{g}.norm{1,2}
            '.norm1.weight': backbone_no_decay,
            '.norm1.bias': backbone_no_decay,
            '.norm2.weight': backbone_no_decay,
            '.norm2.bias': backbone_no_decay,
            'query_embed': embed_no_decay,
            'query_feat': embed_no_decay,
            'level_embed': embed_no_decay,
        }))
