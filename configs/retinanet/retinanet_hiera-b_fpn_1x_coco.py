# Hiera-B (IN1K-finetuned weights; same stage widths as Hiera-T): the Hiera-T recipe otherwise.
_base_ = ['./retinanet_hiera-t_fpn_1x_coco.py', '../_base_/hiera/hiera-b.py']
pretrained = {{_base_.hiera_b_pretrained}}
model = dict(backbone={{_base_.hiera_b}})
