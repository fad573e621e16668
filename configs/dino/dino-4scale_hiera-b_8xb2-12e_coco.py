# Hiera-B (IN1K-finetuned weights; same stage widths as Hiera-T): the Hiera-T recipe otherwise.
_base_ = ['./dino-4scale_hiera-t_8xb2-12e_coco.py', '../_base_/hiera/hiera-b.py']
pretrained = {{_base_.hiera_b_pretrained}}
model = dict(backbone={{_base_.hiera_b}})
