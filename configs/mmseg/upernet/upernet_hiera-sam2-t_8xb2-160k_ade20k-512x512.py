# UperNet with the Hiera-T trunk of SAM 2.1 (windowed attention with a few global blocks), started
# from the released SAM 2.1 file (only image_encoder.trunk.* is used; fetched on first use, or
# give a local copy in init_cfg.checkpoint); the Hiera-T recipe otherwise.
_base_ = './upernet_hiera-t_8xb2-160k_ade20k-512x512.py'
checkpoint_file = {{_base_.hiera_sam21_t_pretrained}}
model = dict(backbone={{_base_.hiera_sam21_t}})
