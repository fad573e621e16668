# Mask R-CNN, Hiera-B+, MAE ImageNet-1K weights. The Hiera-B recipe (mask_rcnn_hiera_b_100ep.py,
# the Hiera paper's ViTDet setting; paper Table 10: 53.5 box AP, 47.3 mask AP) with the B+ trunk
# and its weights. Same depth as B (24 blocks), same lr decay 0.83; drop path 0.2 is our choice
# between ViTDet's B (0.1) and L (0.4).
from functools import partial

from .mask_rcnn_hiera_b_100ep import (
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
