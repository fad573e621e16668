# Mask2Former with a Hiera-B backbone (IN1K-finetuned weights); the Hiera-T recipe otherwise
# (Hiera-B has the widths of Hiera-T).
_base_ = ['./mask2former_hiera-t_8xb2-160k_ade20k-512x512.py', '../../_base_/hiera/hiera-b.py']
pretrained = {{_base_.hiera_b_pretrained}}
model = dict(backbone={{_base_.hiera_b}})
