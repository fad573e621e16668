# UperNet with the Hiera-B+ trunk of SAM 2.1 (stage widths 112, 224, 448, 896), started from the
# released SAM 2.1 file (only image_encoder.trunk.* is used); the Hiera-T recipe otherwise.
_base_ = './upernet_hiera-t_8xb2-160k_ade20k-512x512.py'
checkpoint_file = {{_base_.hiera_sam21_b_plus_pretrained}}
model = dict(
    backbone={{_base_.hiera_sam21_b_plus}},
    decode_head=dict(in_channels={{_base_.hiera_sam21_b_plus_widths}}),
    auxiliary_head=dict(in_channels=448))
