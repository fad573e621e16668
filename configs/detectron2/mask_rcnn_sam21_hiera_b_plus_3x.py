# Mask R-CNN on the Hiera-B+ image-encoder trunk of SAM 2.1: the 3x recipe of
# mask_rcnn_sam21_hiera_t_3x.py (after detectron2's MViTv2 3x configs) with the B+ trunk and, as
# MViTv2-B (24 blocks, like B+) in detectron2's cascade_mask_rcnn_mvitv2_b_3x.py, drop path 0.4.
from .mask_rcnn_sam21_hiera_t_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.arch = 'sam2.1_base_plus'
model.backbone.bottom_up.drop_path_rate = 0.4
train.init_checkpoint = (
    'https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_base_plus.pt')
