_base_ = './mask-rcnn_hiera-b_fpn_lsj-100e_coco.py'
# Hiera-B+ (MAE weights): the Hiera-B LSJ recipe (lr 3.5e-5, layer decay 0.83, drop path 0.2);
# wider stages: 112, 224, 448, 896.
pretrained = 'hf://facebook/hiera-base-plus-224-mae-hf'
model = dict(
    backbone=dict(
        arch='base_plus',
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[112, 224, 448, 896]))
