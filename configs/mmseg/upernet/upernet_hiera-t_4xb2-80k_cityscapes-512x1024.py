# UperNet, Hiera-T (IN1K-finetuned weights), Cityscapes 512 x 1024, 80k iterations at 4 x 2:
# mmseg's ResNet-101 UperNet config (data, SyncBN heads, schedule length), which this inherits,
# with the optimizer of mmseg's Swin UperNet recipe (AdamW lr 6e-5, wd 0.01, none on norms and
# position embeddings, 1500 warm-up iterations then linear decay) in place of its SGD.
_base_ = [
    'mmseg::upernet/upernet_r101_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/hiera.py',
]

custom_imports = {{_base_.hiera_custom_imports}}
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

model = dict(
    pretrained=None,  # the base's ImageNet ResNet-101; Hiera loads through its init_cfg
    backbone={{_base_.hiera_backbone}},
    decode_head=dict(in_channels={{_base_.hiera_widths}}),
    auxiliary_head=dict(in_channels=384))

optim_wrapper = {{_base_.hiera_swin_optim_wrapper}}
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=80000, by_epoch=False),
]
