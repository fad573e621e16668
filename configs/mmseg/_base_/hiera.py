# What MMSegmentation configs of this project share, listed beside their mmseg base. Apart from
# custom_hooks only variables (two bases may not both define `model`): each config puts them in
# place, e.g. `backbone={{_base_.hiera_backbone}}`. The larger IN1K backbones reuse
# ../../_base_/hiera/hiera-{s,b,b-plus}.py; the SAM 2.1 trunks are defined here.

# Each config states `custom_imports = {{_base_.hiera_custom_imports}}` itself (a base that
# defined custom_imports would clash with mmseg bases that define it, e.g. Mask2Former's).
hiera_custom_imports = dict(imports=['mmseg', 'hiera_mm.mmseg'], allow_failed_imports=False)
# Declared here so that every launcher (ours, mmseg's tools, mim, Runner.from_cfg) gets them.
# (default_hooks.checkpoint is set by each config: mmseg's schedule bases define default_hooks.)
custom_hooks = [dict(type='FiniteLossHook'), dict(type='TrustRunCheckpointsHook')]

# Hiera-T, IN1K-finetuned weights of the Hiera authors; all four stages (strides 4-32, widths
# 96-768), each through a LayerNorm. Stochastic depth 0.1 as our detection configs (not tuned).
hiera_pretrained = 'hf://facebook/hiera-tiny-224-hf'
hiera_widths = [96, 192, 384, 768]
hiera_backbone = dict(
    _delete_=True,  # replaces the base's Swin / ResNet backbone
    type='HieraBackbone',
    arch='tiny',
    drop_path_rate=0.1,
    init_cfg=dict(type='Pretrained', checkpoint=hiera_pretrained))

# The trunks of SAM 2.1 (windowed attention with a few global blocks, window position embedding),
# started from the released SAM 2.1 files (only image_encoder.trunk.* is used). They overlay
# `hiera_backbone`.
hiera_sam21_t_pretrained = ('https://dl.fbaipublicfiles.com/segment_anything_2/092824/'
                            'sam2.1_hiera_tiny.pt')
hiera_sam21_t = dict(
    arch='sam2.1_tiny', init_cfg=dict(type='Pretrained', checkpoint=hiera_sam21_t_pretrained))
hiera_sam21_b_plus_pretrained = ('https://dl.fbaipublicfiles.com/segment_anything_2/092824/'
                                 'sam2.1_hiera_base_plus.pt')
hiera_sam21_b_plus_widths = [112, 224, 448, 896]
hiera_sam21_b_plus = dict(
    arch='sam2.1_base_plus', drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint=hiera_sam21_b_plus_pretrained))

# mmseg's Swin recipe for UperNet (AdamW lr 6e-5, wd 0.01, no weight decay on norms and position
# embeddings, no layer-wise decay; 1500 iterations of linear warm-up, then linear decay), with
# Hiera's parameter names: no weight decay on any norm layer (by type) and on `pos_embed` (and
# SAM2's `pos_embed_window`). Replaces the base's optimizer wrapper as a whole.
hiera_swin_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0., custom_keys={'pos_embed': dict(decay_mult=0.)}))
