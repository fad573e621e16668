# Cascade Mask R-CNN, Hiera-B+, MAE ImageNet-1K weights: cascade_mask_rcnn_hiera_b_100ep.py with
# what mask_rcnn_hiera_b_plus_100ep.py changes (trunk, weights, drop path; lr decay 0.83).
from functools import partial

from .cascade_mask_rcnn_hiera_b_100ep import (
    dataloader,
    get_hiera_lr_decay_rate,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.backbone.bottom_up.arch = 'base_plus'
model.backbone.bottom_up.drop_path_rate = 0.2
train.init_checkpoint = 'https://dl.fbaipublicfiles.com/hiera/mae_hiera_base_plus_224.pth'
optimizer.params.lr_factor_func = partial(get_hiera_lr_decay_rate, arch='base_plus',
                                          lr_decay_rate=0.83)
