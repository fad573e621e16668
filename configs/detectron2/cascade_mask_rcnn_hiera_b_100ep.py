# Cascade Mask R-CNN, Hiera-B, MAE ImageNet-1K weights: mask_rcnn_hiera_b_100ep.py (the Hiera
# paper's ViTDet recipe) with ViTDet's cascade box heads (detectron2's
# projects/ViTDet/configs/COCO/cascade_mask_rcnn_vitdet_b_100ep.py): three stages at IoU
# 0.5 / 0.6 / 0.7, each a 4conv1fc head with LayerNorm and class-agnostic box regression.
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads import CascadeROIHeads, FastRCNNConvFCHead, FastRCNNOutputLayers

from .mask_rcnn_hiera_b_100ep import (
    dataloader,
    get_hiera_lr_decay_rate,
    lr_multiplier,
    model,
    optimizer,
    train,
)

# StandardROIHeads' single box head, predictor and matcher become one per cascade stage.
for key in ('box_head', 'box_predictor', 'proposal_matcher'):
    model.roi_heads.pop(key)
model.roi_heads.update(
    _target_=CascadeROIHeads,
    box_heads=[
        L(FastRCNNConvFCHead)(
            input_shape=ShapeSpec(channels=256, height=7, width=7),
            conv_dims=[256, 256, 256, 256],
            fc_dims=[1024],
            conv_norm='LN',
        )
        for _stage in range(3)
    ],
    box_predictors=[
        L(FastRCNNOutputLayers)(
            input_shape=ShapeSpec(channels=1024),
            box2box_transform=L(Box2BoxTransform)(weights=(xy, xy, wh, wh)),
            cls_agnostic_bbox_reg=True,
            test_score_thresh=0.05,
            num_classes='${...num_classes}',
        )
        for xy, wh in ((10, 5), (20, 10), (30, 15))
    ],
    proposal_matchers=[
        L(Matcher)(thresholds=[iou], labels=[0, 1], allow_low_quality_matches=False)
        for iou in (0.5, 0.6, 0.7)
    ],
)
