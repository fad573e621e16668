# Hiera-T Mask R-CNN on the synthetic toy shapes (tools/dev/make_toy_coco.py: 128 px, circle /
# triangle / rectangle), sized to learn on a few CPU cores in minutes: the Hiera-T 3x config
# (../mask_rcnn_hiera_t_3x.py) with 128-channel FPN and heads, batch 4, lr 4e-4 with a cosine
# schedule, fp32 on the CPU, random init. A template for one's own COCO-format dataset:

#   python tools/dev/make_toy_coco.py --out data/toy_coco --num-train 200 --num-val 32 --size 128
#   python tools/detectron2/train_net.py \
#       --config-file configs/detectron2/toy/mask_rcnn_hiera_t_toy.py \
#       --register toy_coco_train data/toy_coco/annotations/instances_train.json \
#           data/toy_coco/train \
#       --register toy_coco_val data/toy_coco/annotations/instances_val.json data/toy_coco/val
#
# (--register NAME JSON IMAGE_ROOT registers a COCO-format dataset under NAME in every process.)
# For another dataset: other names, model.roi_heads.num_classes, and image sizes to taste.
import detectron2.data.transforms as T
from fvcore.common.param_scheduler import CosineParamScheduler

from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.solver import WarmupParamScheduler

from ..mask_rcnn_hiera_t_3x import dataloader, model, optimizer, train

image_size = 128
width = 128  # FPN and head channels (256 in the COCO configs)

dataloader.train.dataset.names = 'toy_coco_train'
dataloader.test.dataset.names = 'toy_coco_val'
dataloader.train.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size),
]
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = 1
dataloader.test.num_workers = 1

model.roi_heads.num_classes = 3
model.backbone.bottom_up.drop_path_rate = 0.0
model.backbone.out_channels = width
model.proposal_generator.head.in_channels = width
model.proposal_generator.pre_nms_topk = (600, 300)
model.proposal_generator.post_nms_topk = (300, 100)
model.roi_heads.batch_size_per_image = 64
model.roi_heads.box_head.input_shape = ShapeSpec(channels=width, height=7, width=7)
model.roi_heads.box_head.fc_dims = [512, 512]
model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=512)
model.roi_heads.box_predictor.test_topk_per_image = 20
model.roi_heads.mask_head.input_shape = ShapeSpec(channels=width, width=14, height=14)
# Two 64-channel convs before the upsampling (four of 256 in COCO): the mask head's convs are
# the largest part of a CPU step.
model.roi_heads.mask_head.conv_dims = [64, 64, 64]

train.device = 'cpu'
train.amp.enabled = False
train.ddp.fp16_compression = False
train.init_checkpoint = ''  # or hf://facebook/hiera-tiny-224-hf for the IN1K weights
train.output_dir = './output/toy'
train.max_iter = 300
train.checkpointer.period = 300
train.eval_period = 300
train.log_period = 20

# From random init a higher lr than the COCO recipe's learns faster; 50 warm-up iterations.
optimizer.lr = 4e-4
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(CosineParamScheduler)(start_value=1.0, end_value=0.05),
    warmup_length=50 / train.max_iter,
    warmup_factor=0.01,
)
