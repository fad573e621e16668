# Mask R-CNN, Hiera-B, MAE ImageNet-1K weights. Recipe: the Hiera paper's COCO setting (Table 10:
# 52.2 box AP, 46.3 mask AP), i.e. ViTDet's for hierarchical backbones as in detectron2's
# projects/ViTDet/configs/COCO/cascade_mask_rcnn_mvitv2_b_in21k_100ep.py: LSJ at 1024, 100 epochs
# at batch 64, AdamW, layer-wise lr decay per Hiera block (0.83 for B and B+, 0.89 for L), AMP.
from functools import partial

from fvcore.common.param_scheduler import MultiStepParamScheduler

from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler

from hiera_mm.detectron2 import get_hiera_lr_decay_rate

from ._base_.coco_loader_lsj import dataloader
from ._base_.mask_rcnn_hiera_fpn import model

# Backbone: every Hiera block keeps its pretrained attention (attention='exact'). Drop path 0.1
# is ViTDet's ViT-B value (the Hiera paper does not restate it).
model.backbone.bottom_up.arch = 'base'
model.backbone.bottom_up.drop_path_rate = 0.1
model.backbone.bottom_up.square_pad = 1024
# FPN reports the padding of the whole backbone: every batch is one 1024 x 1024 canvas.
model.backbone.square_pad = 1024

# LayerNorm in the FPN and in the RoI heads' convs, two convs in the RPN head, 4conv1fc box head.
model.backbone.norm = 'LN'
model.proposal_generator.head.conv_dims = [-1, -1]
model.roi_heads.box_head.conv_dims = [256, 256, 256, 256]
model.roi_heads.box_head.fc_dims = [1024]
model.roi_heads.box_head.conv_norm = 'LN'
model.roi_heads.mask_head.conv_norm = 'LN'

# Initialisation and trainer. MAE weights of facebookresearch/hiera (torch hub
# `hiera_base_224(pretrained=True, checkpoint='mae_in1k')`); HieraCheckpointer puts the encoder
# into the backbone and drops the MAE decoder. The IN1K fine-tuned weights are on the HF hub:
# train.init_checkpoint=hf://facebook/hiera-base-224-hf
train = model_zoo.get_config('common/train.py').train
train.amp.enabled = True
train.ddp.fp16_compression = True
train.init_checkpoint = 'https://dl.fbaipublicfiles.com/hiera/mae_hiera_base_224.pth'

# Schedule: 100 epochs = 184375 iterations x 64 images / 118000 COCO train images; lr steps at
# about epochs 89 and 96, 250 warm-up iterations.
train.max_iter = 184375
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(
        values=[1.0, 0.1, 0.01],
        milestones=[163889, 177546],
        num_updates=train.max_iter,
    ),
    warmup_length=250 / train.max_iter,
    warmup_factor=0.001,
)

# AdamW; each Hiera block's lr is scaled by lr_decay_rate ** (blocks above it + 1); the patch and
# position embeddings are one step below block 0; FPN and heads train at the full lr.
optimizer = model_zoo.get_config('common/optim.py').AdamW
optimizer.lr = 1e-4
optimizer.params.lr_factor_func = partial(get_hiera_lr_decay_rate, arch='base', lr_decay_rate=0.83)
optimizer.params.overrides = {'pos_embed': {'weight_decay': 0.0},
                              'pos_embed_window': {'weight_decay': 0.0}}
