# COCO with large-scale jitter (LSJ), as detectron2's projects/ViTDet/configs/common/
# coco_loader_lsj.py (not in the installed package): flip, rescale by [0.1, 2.0] of a 1024 x 1024
# canvas, crop to it; total batch 64. The model pads every batch to the canvas (square_pad=1024).
import detectron2.data.transforms as T
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

image_size = 1024

dataloader = model_zoo.get_config('common/data/coco.py').dataloader
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.1, max_scale=2.0,
                     target_height=image_size, target_width=image_size),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad=False),
]
dataloader.train.mapper.image_format = 'RGB'
# Crops cut objects: boxes are recomputed from the cropped masks.
dataloader.train.mapper.recompute_boxes = True
dataloader.train.total_batch_size = 64

dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size),
]
