# UperNet, Hiera-T (IN1K-finetuned weights), ADE20K 512 x 512, 160k iterations at 8 x 2: the
# recipe of mmseg's Swin-T UperNet config, which this inherits (RGB, ImageNet mean / std, AdamW
# lr 6e-5, wd 0.01, no layer-wise decay, SyncBN heads). Only the backbone, the heads' input widths
# and the parameter-wise settings (Swin's name Swin parameters) differ.
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
    '../_base_/hiera.py',
]

custom_imports = {{_base_.hiera_custom_imports}}
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

checkpoint_file = {{_base_.hiera_pretrained}}
model = dict(
    backbone={{_base_.hiera_backbone}},
    # stage widths 96, 192, 384, 768; the auxiliary FCN head reads stage 3 (stride 16)
    decode_head=dict(in_channels={{_base_.hiera_widths}}),
    auxiliary_head=dict(in_channels=384))

optim_wrapper = {{_base_.hiera_swin_optim_wrapper}}
