# COCO with the multi-scale training of detectron2's projects/MViTv2/configs/common/coco_loader.py
# (not in the installed package): half the time a short side of 400-600 and a 384-600 crop, then a
# short side of 480-800 (long side <= 1333) and a flip; RGB. Test: short side 800.
import detectron2.data.transforms as T
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

dataloader = model_zoo.get_config('common/data/coco.py').dataloader
dataloader.train.mapper.augmentations = [
    L(T.RandomApply)(
        tfm_or_aug=L(T.AugmentationList)(augs=[
            L(T.ResizeShortestEdge)(short_edge_length=[400, 500, 600], sample_style='choice'),
            L(T.RandomCrop)(crop_type='absolute_range', crop_size=(384, 600)),
        ]),
        prob=0.5,
    ),
    L(T.ResizeShortestEdge)(
        short_edge_length=(480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800),
        sample_style='choice',
        max_size=1333,
    ),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.train.mapper.image_format = 'RGB'
