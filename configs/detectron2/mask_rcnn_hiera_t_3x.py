# Mask R-CNN, Hiera-T, ImageNet-1K fine-tuned weights (HF hub). Recipe: detectron2's
# projects/MViTv2/configs/mask_rcnn_mvitv2_t_3x.py (a hierarchical transformer of Hiera-T's size):
# FPN Mask R-CNN heads, multi-scale training with crops, 36 epochs at batch 64, AdamW lr 1.6e-4
# (wd 0.1, none on position embeddings), drop path 0.2, AMP, no layer-wise lr decay.
from fvcore.common.param_scheduler import MultiStepParamScheduler

from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler

from hiera_mm import archs

from ._base_.coco_loader_multiscale import dataloader
from ._base_.mask_rcnn_hiera_fpn import model

model.backbone.bottom_up.arch = 'tiny'
model.backbone.bottom_up.drop_path_rate = 0.2

dataloader.train.total_batch_size = 64

# Initialisation and trainer. HieraCheckpointer reads hf:// ids (cached by huggingface_hub).
train = model_zoo.get_config('common/train.py').train
train.amp.enabled = True
train.ddp.fp16_compression = True
train.init_checkpoint = 'hf://' + archs.HUB_IDS['tiny']  # hf://facebook/hiera-tiny-224-hf

# 36 epochs: 67500 iterations x 64 images / 118000 images; lr steps at epochs 28 and 33.9.
train.max_iter = 67500
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(
        values=[1.0, 0.1, 0.01],
        milestones=[52500, 62500, 67500],
    ),
    warmup_length=250 / train.max_iter,
    warmup_factor=0.001,
)

optimizer = model_zoo.get_config('common/optim.py').AdamW
optimizer.lr = 1.6e-4
optimizer.params.overrides = {'pos_embed': {'weight_decay': 0.0},
                              'pos_embed_window': {'weight_decay': 0.0}}
