# UperNet with a Hiera-S backbone (IN1K-finetuned weights); the Hiera-T recipe otherwise (Hiera-S
# has the widths of Hiera-T).
_base_ = ['./upernet_hiera-t_8xb2-160k_ade20k-512x512.py', '../../_base_/hiera/hiera-s.py']
checkpoint_file = {{_base_.hiera_s_pretrained}}
model = dict(backbone={{_base_.hiera_s}})
