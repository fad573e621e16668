# UperNet with a Hiera-B+ backbone (IN1K-finetuned weights, stage widths 112, 224, 448, 896); the
# Hiera-T recipe otherwise.
_base_ = ['./upernet_hiera-t_8xb2-160k_ade20k-512x512.py', '../../_base_/hiera/hiera-b-plus.py']
checkpoint_file = {{_base_.hiera_b_plus_pretrained}}
model = dict(
    backbone={{_base_.hiera_b_plus}},
    decode_head=dict(in_channels={{_base_.hiera_b_plus_widths}}),
    auxiliary_head=dict(in_channels=448))
