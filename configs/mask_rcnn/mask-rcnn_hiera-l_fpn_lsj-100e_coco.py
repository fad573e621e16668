# Hiera-L (MAE weights), 48 blocks, stage widths 144, 288, 576, 1152: lr 3e-5 at batch 64,
# stochastic depth 0.4 and layer decay 0.89 over 48 blocks: the end point of ViTDet's ViT-L
# (0.8 per block over 24 blocks: 0.8 ** 25 ~ 0.89 ** 49 ~ 4e-3; see the B config).
# Activation checkpointing (with_cp=True) trades a second forward pass for memory if needed.
_base_ = ['./mask-rcnn_hiera-b_fpn_lsj-100e_coco.py', '../_base_/hiera/hiera-l.py']
pretrained = {{_base_.hiera_l_mae_pretrained}}
model = dict(backbone={{_base_.hiera_l_mae}}, neck=dict(in_channels={{_base_.hiera_l_widths}}))

optim_wrapper = dict(optimizer=dict(lr=3e-5), paramwise_cfg=dict(layer_decay_rate=0.89))
