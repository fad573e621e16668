# Hiera-B+, IN1K-finetuned weights; the Hiera-T recipe otherwise.
_base_ = ['./mask-rcnn_hiera-t_fpn_1x_coco.py', '../_base_/hiera/hiera-b-plus.py']
pretrained = {{_base_.hiera_b_plus_pretrained}}
model = dict(
    backbone={{_base_.hiera_b_plus}}, neck=dict(in_channels={{_base_.hiera_b_plus_widths}}))
