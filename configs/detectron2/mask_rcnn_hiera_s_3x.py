# Mask R-CNN, Hiera-S, ImageNet-1K fine-tuned weights: the Hiera-T 3x recipe
# (mask_rcnn_hiera_t_3x.py, after detectron2's MViTv2 3x configs, whose S keeps T's drop path 0.2)
# with the S trunk and its weights.
from hiera_mm import archs

from .mask_rcnn_hiera_t_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.arch = 'small'
train.init_checkpoint = 'hf://' + archs.HUB_IDS['small']  # hf://facebook/hiera-small-224-hf
