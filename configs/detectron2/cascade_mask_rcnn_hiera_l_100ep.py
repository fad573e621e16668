# Cascade Mask R-CNN, Hiera-L, MAE ImageNet-1K weights: cascade_mask_rcnn_hiera_b_100ep.py with
# what mask_rcnn_hiera_l_100ep.py changes (48-block trunk, weights, drop path 0.4, lr decay 0.89).
from functools import partial

from .cascade_mask_rcnn_hiera_b_100ep import (
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
