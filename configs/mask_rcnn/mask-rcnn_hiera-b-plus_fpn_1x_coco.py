_base_ = './mask-rcnn_hiera-t_fpn_1x_coco.py'
# Hiera-B+, IN1K-finetuned weights; the Hiera-T recipe otherwise.
# Stochastic depth 0.2: our choice (grows with model size), not tuned.
# Hiera-B+ is wider: stage widths 112, 224, 448, 896.
pretrained = 'hf://facebook/hiera-base-plus-224-hf'
model = dict(
    backbone=dict(
        arch='base_plus',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[112, 224, 448, 896]))
