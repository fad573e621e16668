# Mask R-CNN on the Hiera-T image-encoder trunk of SAM 2.1 ("sam21"): the Hiera-T 3x recipe
# (mask_rcnn_hiera_t_3x.py, after detectron2's MViTv2 3x configs) with SAM 2.1's trunk (windowed
# attention per stage, three global blocks, absolute-window position embedding).
from .mask_rcnn_hiera_t_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.arch = 'sam2.1_tiny'
# The released SAM 2.1 file: HieraCheckpointer takes image_encoder.trunk and drops the rest.
train.init_checkpoint = (
    'https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt')
