# Hiera-B+ trunk of SAM 2.1 (stage widths 112, 224, 448, 896), started from the SAM 2.1
# checkpoint (only image_encoder.trunk.* is used); the Hiera-T recipe otherwise, stochastic depth
# 0.2 (not tuned). Get the checkpoint with `huggingface-cli download facebook/sam2.1-hiera-base-plus
# sam2.1_hiera_base_plus.pt --local-dir checkpoints` (or SAM2's checkpoints/download_ckpts.sh).
_base_ = ['./mask-rcnn_hiera-t_fpn_1x_coco.py', '../_base_/hiera/hiera-sam2-b-plus.py']
pretrained = {{_base_.hiera_sam2_b_plus_pretrained}}
model = dict(
    backbone={{_base_.hiera_sam2_b_plus}},
    neck=dict(in_channels={{_base_.hiera_sam2_b_plus_widths}}))
