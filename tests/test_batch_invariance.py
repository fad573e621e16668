"""Batch mates: with padding to the batch's largest image, an image's features depend on the other
images (global attention over padding, position embedding stretched over the padded grid); on a
fixed canvas (BatchFixedSizePad, as the LSJ configs use) they do not."""
import torch
from mmengine.structures import InstanceData

import hiera_mm.mmdet  # noqa: F401  (registers into mmdet)
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample

from conftest import IMAGENET_MEAN, IMAGENET_STD

PREPROCESS = dict(type='DetDataPreprocessor', mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  bgr_to_rgb=True, pad_size_divisor=32)


def sample(h, w):
    s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
    s.gt_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    return s


def features_of_first(backbone, preprocessor, images):
    data = preprocessor(dict(inputs=images, data_samples=[sample(*i.shape[1:]) for i in images]),
                        training=True)
    with torch.no_grad():
        feats = backbone(data['inputs'])
    h, w = images[0].shape[1:]
    return [f[0, :, : h // 2 ** (i + 2), : w // 2 ** (i + 2)] for i, f in enumerate(feats)]


def max_diff(a, b):
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def test_fixed_canvas_makes_features_independent_of_batch_mates():
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(0)
    backbone = MODELS.build(dict(type='HieraBackbone', arch='tiny'))
    backbone.init_weights()
    backbone.eval()
    image = torch.randint(0, 256, (3, 128, 160), dtype=torch.uint8)
    big_mate = torch.randint(0, 256, (3, 256, 224), dtype=torch.uint8)

    padded = MODELS.build(PREPROCESS)
    alone = features_of_first(backbone, padded, [image])
    with_mate = features_of_first(backbone, padded, [image, big_mate])
    effect = max_diff(alone, with_mate)
    print(f'max |diff| of an image\'s features alone vs. beside a larger image: {effect:.3f}')
    assert effect > 1e-2  # the effect is real without a fixed canvas

    canvas = MODELS.build(dict(PREPROCESS, batch_augments=[
        dict(type='BatchFixedSizePad', size=(256, 256))]))
    alone = features_of_first(backbone, canvas, [image])
    with_mate = features_of_first(backbone, canvas, [image, big_mate])
    assert max_diff(alone, with_mate) <= 1e-5
