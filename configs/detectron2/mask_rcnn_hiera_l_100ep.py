# Mask R-CNN, Hiera-L, MAE ImageNet-1K weights. The Hiera-B recipe (mask_rcnn_hiera_b_100ep.py,
# the Hiera paper's ViTDet setting; paper Table 10: 55.0 box AP, 48.6 mask AP) with the L trunk
# (48 blocks), lr decay 0.89 per block and ViTDet's ViT-L drop path (0.4).
from functools import partial

from .mask_rcnn_hiera_b_100ep import (
    dataloader,
    get_hiera_lr_decay_rate,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.backbone.bottom_up.arch = 'large'
model.backbone.bottom_up.drop_path_rate = 0.4
train.init_checkpoint = 'https://dl.fbaipublicfiles.com/hiera/mae_hiera_large_224.pth'
optimizer.params.lr_factor_func = partial(get_hiera_lr_decay_rate, arch='large',
                                          lr_decay_rate=0.89)
