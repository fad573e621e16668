# Hiera-B+ (MAE weights): the Hiera-B LSJ recipe (lr 3.5e-5, layer decay 0.83, drop path 0.2);
# wider stages: 112, 224, 448, 896.
_base_ = ['./mask-rcnn_hiera-b_fpn_lsj-100e_coco.py', '../_base_/hiera/hiera-b-plus.py']
pretrained = {{_base_.hiera_b_plus_mae_pretrained}}
model = dict(
    backbone={{_base_.hiera_b_plus_mae}}, neck=dict(in_channels={{_base_.hiera_b_plus_widths}}))
