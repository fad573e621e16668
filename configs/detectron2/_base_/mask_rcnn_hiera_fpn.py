# Mask R-CNN with FPN on a Hiera bottom-up network: Detectron2's model-zoo Mask R-CNN
# (common/models/mask_rcnn_fpn.py) with the ResNet swapped for hiera_mm's HieraBackbone.
# Hiera was pretrained on RGB images on the 0-255 scale, normalised with the ImageNet mean and
# std, so the detector takes RGB input with those statistics (not the BGR Caffe defaults).
# The recipes (LSJ 100 epochs, multi-scale 3x) import this file and set arch, weights and schedule.
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from hiera_mm.detectron2 import HieraBackbone

model = model_zoo.get_config('common/models/mask_rcnn_fpn.py').model
constants = model_zoo.get_config('common/data/constants.py').constants
model.pixel_mean = constants.imagenet_rgb256_mean
model.pixel_std = constants.imagenet_rgb256_std
model.input_format = 'RGB'

# Stage maps at strides 4, 8, 16, 32 named stage1..stage4, each behind its own LayerNorm.
model.backbone.bottom_up = L(HieraBackbone)(
    arch='tiny',
    out_indices=(0, 1, 2, 3),
    out_norm=True,
    drop_path_rate=0.1,
)
model.backbone.in_features = ['stage1', 'stage2', 'stage3', 'stage4']
