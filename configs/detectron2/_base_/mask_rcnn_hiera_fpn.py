# Mask R-CNN with FPN on a Hiera bottom-up network: detectron2's model-zoo
# common/models/mask_rcnn_fpn.py with the ResNet swapped for hiera_mm's HieraBackbone. The
# recipes (LSJ 100 epochs, multi-scale 3x) import this file and set arch, weights and schedule.
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from hiera_mm.archs import IMAGENET_MEAN, IMAGENET_STD
from hiera_mm.detectron2 import HieraBackbone

model = model_zoo.get_config('common/models/mask_rcnn_fpn.py').model
# Hiera's pretraining input: RGB on the 0-255 scale, ImageNet mean and std (not BGR Caffe's).
model.pixel_mean = list(IMAGENET_MEAN)
model.pixel_std = list(IMAGENET_STD)
model.input_format = 'RGB'

# Stage maps at strides 4, 8, 16, 32 named stage1..stage4, each behind its own LayerNorm.
model.backbone.bottom_up = L(HieraBackbone)(
    arch='tiny',
    out_indices=(0, 1, 2, 3),
    out_norm=True,
    drop_path_rate=0.1,
)
model.backbone.in_features = ['stage1', 'stage2', 'stage3', 'stage4']
