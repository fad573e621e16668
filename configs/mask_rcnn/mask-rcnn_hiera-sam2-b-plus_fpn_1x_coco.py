_base_ = './mask-rcnn_hiera-t_fpn_1x_coco.py'
# Hiera-B+ trunk of SAM 2.1 (stage widths 112, 224, 448, 896), started from the SAM 2.1
# checkpoint; the Hiera-T recipe otherwise, stochastic depth 0.2 (not tuned).
# Only image_encoder.trunk.* of the checkpoint is used. Get it with
#   huggingface-cli download facebook/sam2.1-hiera-base-plus sam2.1_hiera_base_plus.pt \
#       --local-dir checkpoints
# or with checkpoints/download_ckpts.sh of github.com/facebookresearch/sam2.
pretrained = 'checkpoints/sam2.1_hiera_base_plus.pt'
model = dict(
    backbone=dict(
        arch='sam2_base_plus',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[112, 224, 448, 896]))
