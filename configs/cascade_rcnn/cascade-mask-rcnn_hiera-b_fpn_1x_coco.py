_base_ = './cascade-mask-rcnn_hiera-t_fpn_1x_coco.py'
# Hiera-B (IN1K-finetuned weights; same stage widths as Hiera-T): the Hiera-T recipe otherwise.
# Stochastic depth 0.2: our choice (grows with model size), not tuned.
pretrained = 'hf://facebook/hiera-base-224-hf'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
