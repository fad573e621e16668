# Hiera-B, IN1K-finetuned weights; the Hiera-T recipe otherwise.
_base_ = ['./mask-rcnn_hiera-t_fpn_ms-crop-3x_coco.py', '../_base_/hiera/hiera-b.py']
pretrained = {{_base_.hiera_b_pretrained}}
model = dict(backbone={{_base_.hiera_b}})
