_base_ = './mask-rcnn_hiera-t_fpn_1x_coco.py'
# Hiera-S, IN1K-finetuned weights; the Hiera-T recipe otherwise.
# Stochastic depth 0.15: our choice (grows with model size), not tuned.
pretrained = 'hf://facebook/hiera-small-224-hf'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.15,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
