"""tools/swap_backbone.py / hiera_mm_tools.swap.mmdet: swapped mmdet configs load, build, train.

Each detector config shipped inside the mmdet package is swapped to Hiera-T and written to a
temporary folder; the written config must load with ``Config.fromfile``, state Hiera's
normalisation, AdamW and paramwise settings, build, and give a finite loss on two 64 x 64
images in which every backbone parameter gets a gradient. To stay fast on CPU the built model
has one block per Hiera stage, no pretrained weights (the detector's own init only for
transformer heads) and fewer queries / transformer layers / sampled RoIs / head convs.

Which Hiera stages a neck gets comes from probing the original backbone (its strides and
widths); backbones no table named (EfficientNet, HRNet) are swapped by that, and the probe's
readings are checked against the published architectures.
"""
import math

import pytest
import torch

from conftest import IMAGENET_MEAN, IMAGENET_STD, iter_dicts

# Hiera-T's stage widths: embed_dim 96 doubled at each of its 4 stages (Ryali et al. 2023,
# Table 2; "embed_dim": 96, "embed_dim_multiplier": 2.0 in facebook/hiera-tiny-224-hf's config.json)
TINY_CHANNELS = [96, 192, 384, 768]
# small images (two 32-pixel mask units a side): the loss step costs little even for two-stage
# detectors on 2 shared CPU cores
IMAGE_HW = (64, 64)

# (config inside mmdet's package, what the loss needs: 'mask' / 'semantic' annotations,
#  the Hiera stages the swap must choose)
ALL = (0, 1, 2, 3)
CASES = [
    # two-stage
    ('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', (), ALL),
    ('mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', ('mask',), ALL),
    ('cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py', ('mask',), ALL),
    ('htc/htc_r50_fpn_1x_coco.py', ('mask', 'semantic'), ALL),
    ('grid_rcnn/grid-rcnn_r50_fpn_gn-head_2x_coco.py', (), ALL),
    ('libra_rcnn/libra-faster-rcnn_r50_fpn_1x_coco.py', (), ALL),  # neck list [FPN, BFP]
    ('dynamic_rcnn/dynamic-rcnn_r50_fpn_1x_coco.py', (), ALL),
    ('pafpn/faster-rcnn_r50_pafpn_1x_coco.py', (), ALL),
    ('swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py', ('mask',), ALL),  # AdamW + Swin keys
    # one-stage (FPN start_level=1: stage 0 is not read)
    ('retinanet/retinanet_r50_fpn_1x_coco.py', (), (1, 2, 3)),
    ('fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py', (), (1, 2, 3)),
    ('atss/atss_r50_fpn_1x_coco.py', (), (1, 2, 3)),
    ('gfl/gfl_r50_fpn_1x_coco.py', (), (1, 2, 3)),
    ('foveabox/fovea_r50_fpn_4xb4-1x_coco.py', (), (1, 2, 3)),
    ('fsaf/fsaf_r50_fpn_1x_coco.py', (), (1, 2, 3)),
    ('tood/tood_r50_fpn_1x_coco.py', (), (1, 2, 3)),
    ('autoassign/autoassign_r50-caffe_fpn_1x_coco.py', (), (1, 2, 3)),
    ('centernet/centernet-update_r50-caffe_fpn_ms-1x_coco.py', (), (1, 2, 3)),
    ('yolof/yolof_r50-c5_8xb8-1x_coco.py', (), (3,)),  # DilatedEncoder: one int in_channels
    # DETR family (ChannelMapper)
    ('dino/dino-4scale_r50_8xb2-12e_coco.py', (), (1, 2, 3)),
    ('deformable_detr/deformable-detr_r50_16xb2-50e_coco.py', (), (1, 2, 3)),
    ('conditional_detr/conditional-detr_r50_8xb2-50e_coco.py', (), (3,)),
    ('dab_detr/dab-detr_r50_8xb2-50e_coco.py', (), (3,)),
    # instance segmentation
    ('mask2former/mask2former_r50_8xb2-lsj-50e_coco.py', ('mask',), ALL),  # panoptic_head
    ('solov2/solov2_r50_fpn_1x_coco.py', ('mask',), ALL),
    ('condinst/condinst_r50_fpn_ms-poly-90k_coco_instance.py', ('mask',), (1, 2, 3)),
]


@pytest.fixture(autouse=True)
def quiet_mmengine_logger():
    """init_weights and the optimizer constructor log every parameter at INFO."""
    import logging
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def swap(config, arch='tiny', **kwargs):
    from hiera_mm_tools.swap.mmdet import swap_backbone
    return swap_backbone(config, arch, **kwargs)


def load(text, tmp_path, name='swapped.py'):
    from mmengine.config import Config
    path = tmp_path / name
    path.write_text(text)
    return Config.fromfile(str(path))


def shrink(cfg):
    """Cheap on CPU, same structure: one block per Hiera stage, no pretrained weights, a small
    fixed-size batch pad, fewer queries / transformer layers / sampled RoIs and points."""
    from hiera_mm.archs import ARCH_SETTINGS

    model = cfg.model
    model.backbone.arch = dict(ARCH_SETTINGS[model.backbone.arch], depths=(1, 1, 1, 1))
    model.backbone.init_cfg = None
    for augment in model.data_preprocessor.get('batch_augments') or []:
        if 'size' in augment:
            augment['size'] = IMAGE_HW
    for d in iter_dicts(model):
        if 'num_queries' in d:
            d['num_queries'] = min(d['num_queries'], 50)
        for part in ('encoder', 'decoder', 'transformer_decoder'):
            if isinstance(d.get(part), dict) and 'num_layers' in d[part]:
                d[part]['num_layers'] = min(d[part]['num_layers'], 2)
        if isinstance(d.get('sampler'), dict) and 'num' in d['sampler']:
            d['sampler']['num'] = min(d['sampler']['num'], 32)
        if isinstance(d.get('fc_out_channels'), int):  # RoI box heads: 7 x 7 x 256 -> 1024 fcs
            d['fc_out_channels'] = min(d['fc_out_channels'], 128)
        if d.get('type') in ('FCNMaskHead', 'HTCMaskHead', 'GridHead'):
            # RoI heads with 4-8 convs of 256-576 channels on 14 x 14 per positive RoI
            d['num_convs'] = 1
            if 'point_feat_channels' in d:
                d['point_feat_channels'] = 8  # Grid R-CNN: 9 points x 8 channels (GN of 36)
        if 'num_points' in d:
            d['num_points'] = min(d['num_points'], 1024)
        if isinstance(d.get('stacked_convs'), int) and d['stacked_convs'] > 1:
            d['stacked_convs'] = 1  # dense heads: conv towers run on every level
        if d.get('type') == 'SOLOV2Head':
            d['feat_channels'] = 64  # its conv towers run on grids up to 40 x 40 at width 512
        if 'nms_pre' in d and 'max_per_img' in d:
            d['nms_pre'], d['max_per_img'] = min(d['nms_pre'], 200), min(d['max_per_img'], 100)


@pytest.mark.parametrize('config,needs,stages', CASES, ids=[c[0] for c in CASES])
def test_swapped_config_trains(config, needs, stages, tmp_path):
    from mmengine.logging import MessageHub
    from mmengine.optim import build_optim_wrapper
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules

    import hiera_mm.mmdet  # noqa: F401  (registers into mmdet)

    register_all_modules()
    text = swap(f'mmdet::{config}')
    assert text.splitlines()[:2] == ['# Generated by tools/swap_backbone.py from',
                                     f'#   mmdet::{config}']
    assert f"_base_ = 'mmdet::{config}'" in text
    cfg = load(text, tmp_path)

    # ---- what the swap states ------------------------------------------------------------------
    assert cfg.custom_imports.imports[-1] == 'hiera_mm.mmdet'
    assert [h['type'] for h in cfg.custom_hooks][-2:] == ['FiniteLossHook', 'TrustRunCheckpointsHook']
    assert cfg.custom_imports.allow_failed_imports is False
    backbone = cfg.model.backbone
    assert backbone.type == 'HieraBackbone' and backbone.arch == 'tiny'
    assert 'depth' not in backbone and 'norm_cfg' not in backbone  # _delete_ dropped ResNet's
    assert tuple(backbone.out_indices) == stages
    assert backbone.init_cfg == dict(type='Pretrained',
                                     checkpoint='hf://facebook/hiera-tiny-224-hf')
    pre = cfg.model.data_preprocessor
    assert pre.bgr_to_rgb is True
    assert list(pre.mean) == IMAGENET_MEAN and list(pre.std) == IMAGENET_STD
    assert pre.pad_size_divisor % 32 == 0
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW'
    paramwise = cfg.optim_wrapper.paramwise_cfg
    assert paramwise.norm_decay_mult == 0
    assert paramwise.custom_keys['pos_embed']['decay_mult'] == 0
    assert 'bias_lr_mult' not in paramwise
    backbone_lr_mult = paramwise.custom_keys.get('backbone', {}).get('lr_mult', 1.0)

    # ---- build, optimizer groups ---------------------------------------------------------------
    shrink(cfg)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    if any(part in cfg.model for part in ('encoder', 'decoder', 'panoptic_head')):
        model.init_weights()  # transformer heads: PyTorch's default init can give NaN costs
    ow_cfg = cfg.optim_wrapper.copy()
    if ow_cfg.get('type') == 'AmpOptimWrapper':  # needs a GPU; the groups are the same
        ow_cfg.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype'):
            ow_cfg.pop(key, None)
    optim_wrapper = build_optim_wrapper(model, ow_cfg)
    group_of = {id(p): g for g in optim_wrapper.optimizer.param_groups for p in g['params']}
    base_lr, base_wd = optimizer.lr, optimizer.weight_decay
    for module_name, module in model.backbone.named_modules():
        for name, param in module.named_parameters(recurse=False):
            full = f'backbone.{module_name}.{name}'
            group = group_of[id(param)]
            assert group['lr'] == pytest.approx(base_lr * backbone_lr_mult), full
            if isinstance(module, torch.nn.LayerNorm) or 'pos_embed' in name:
                assert group['weight_decay'] == 0, f'{full} is decayed'
            elif param.ndim > 1:
                assert group['weight_decay'] == pytest.approx(base_wd), full

    # ---- one loss step --------------------------------------------------------------------------
    # the object classes (HTC's semantic head has more; RPN has 1)
    num_classes = min(d[k] for d in iter_dicts(cfg.model.to_dict())
                      for k in ('num_classes', 'num_things_classes')
                      if isinstance(d.get(k), int) and d[k] > 1)
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, *IMAGE_HW)] * 2,
                          num_items=[3, 2], num_classes=num_classes,
                          with_mask='mask' in needs, with_semantic='semantic' in needs)
    model.train()
    MessageHub.get_current_instance().update_info('epoch', 0)  # TOOD reads it (a hook sets it)
    data = model.data_preprocessor(data, True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert math.isfinite(loss.item()), log_vars
    # Hiera emits only stages the neck reads: every backbone parameter gets a gradient (DDP
    # rejects any without); autograd.grad skips the heads' weight gradients (faster)
    names, params = zip(*model.backbone.named_parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    without_grad = [n for n, g in zip(names, grads) if g is None]
    assert not without_grad, f'backbone parameters without a gradient: {without_grad}'


# (config, stages Hiera emits, the part reading them, its new in_channels): the mapping of more
# families, checked on the written config only (PAA needs sklearn, BoxInst skimage)
MAPPED = [
    ('paa/paa_r50_fpn_1x_coco.py', (1, 2, 3), 'neck', TINY_CHANNELS[1:]),
    ('boxinst/boxinst_r50_fpn_ms-90k_coco.py', (1, 2, 3), 'neck', TINY_CHANNELS[1:]),
    ('rpn/rpn_r50_fpn_1x_coco.py', ALL, 'neck', TINY_CHANNELS),
    ('carafe/faster-rcnn_r50_fpn-carafe_1x_coco.py', ALL, 'neck', TINY_CHANNELS),
    ('regnet/retinanet_regnetx-800MF_fpn_1x_coco.py', (1, 2, 3), 'neck', TINY_CHANNELS[1:]),
    ('dino/dino-5scale_swin-l_8xb2-12e_coco.py', ALL, 'neck', TINY_CHANNELS),
    ('detr/detr_r50_8xb2-150e_coco.py', (3,), 'neck', [768]),
    ('centernet/centernet_r18_8xb16-crop512-140e_coco.py', (3,), 'neck', 768),
    ('maskformer/maskformer_r50_ms-16xb1-75e_coco.py', ALL, 'panoptic_head', TINY_CHANNELS),
    # backbones outside the planner's old table, mapped by probing: EfficientNet-B3's
    # out_indices (3, 4, 5) index its layer list (maps at strides 8, 16, 32), HRNet's four
    # branches (strides 4..32) feed HRFPN
    ('efficientnet/retinanet_effb3_fpn_8xb4-crop896-1x_coco.py', (1, 2, 3), 'neck',
     TINY_CHANNELS[1:]),
    ('hrnet/faster-rcnn_hrnetv2p-w18-1x_coco.py', ALL, 'neck', TINY_CHANNELS),
    ('hrnet/fcos_hrnetv2p-w32-gn-head_4xb4-1x_coco.py', ALL, 'neck', TINY_CHANNELS),
]


@pytest.mark.parametrize('config,stages,consumer,in_channels', MAPPED,
                         ids=[c[0] for c in MAPPED])
def test_swap_maps_stages(config, stages, consumer, in_channels, tmp_path):
    cfg = load(swap(f'mmdet::{config}'), tmp_path)
    assert tuple(cfg.model.backbone.out_indices) == stages
    part = cfg.model[consumer]
    part = part[0] if isinstance(part, list) else part
    assert part.in_channels == in_channels
    assert part.get('start_level', 0) == 0
    assert cfg.model.data_preprocessor.pad_size_divisor % 32 == 0


# ---- what the merge keeps -----------------------------------------------------------------------
def test_dino_paramwise_is_merged(tmp_path):
    cfg = load(swap('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'), tmp_path)
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert keys['backbone'] == dict(lr_mult=0.1)  # DINO's backbone lr x 0.1 kept
    assert keys['pos_embed'] == dict(decay_mult=0.0)
    # Hiera's position embedding and norms keep the backbone lr x 0.1, without decay
    assert keys['backbone.trunk.pos_embed'] == dict(lr_mult=0.1, decay_mult=0.0)
    assert keys['backbone.trunk.blocks.11.norm'] == dict(lr_mult=0.1, decay_mult=0.0)
    # DINO's AdamW kept (lr, weight decay, clipping); padding to Hiera's mask units
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-4, weight_decay=1e-4)
    assert cfg.optim_wrapper.clip_grad.max_norm == 0.1
    assert cfg.model.data_preprocessor.pad_size_divisor == 32
    assert list(cfg.model.neck.in_channels) == TINY_CHANNELS[1:]


def test_fcos_preprocessor_is_rgb_imagenet(tmp_path):
    cfg = load(swap('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'), tmp_path)
    pre = cfg.model.data_preprocessor
    assert pre.bgr_to_rgb is True  # the Caffe base feeds BGR with std 1
    assert list(pre.mean) == IMAGENET_MEAN and list(pre.std) == IMAGENET_STD
    assert pre.pad_size_divisor == 32  # inherited
    neck = cfg.model.neck
    assert list(neck.in_channels) == TINY_CHANNELS[1:] and neck.start_level == 0
    assert neck.add_extra_convs == 'on_output' and neck.num_outs == 5  # inherited
    ow = cfg.optim_wrapper
    assert ow.optimizer == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    assert ow.clip_grad.max_norm == 35  # inherited
    assert 'bias_lr_mult' not in ow.paramwise_cfg and 'bias_decay_mult' not in ow.paramwise_cfg


def test_lr_follows_base_batch_size_and_amp_wrapper_is_kept(tmp_path):
    # deformable DETR: AdamW kept (lr 2e-4 for its batch 32); the AMP LSJ RetinaNet: SGD at
    # batch 64 -> 1e-4 * 64 / 16, AmpOptimWrapper kept
    cfg = load(swap('mmdet::retinanet/retinanet_r50_fpn_8xb8-amp-lsj-200e_coco.py'), tmp_path)
    assert cfg.auto_scale_lr.base_batch_size == 64
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(4e-4)
    cfg = load(swap('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', lr=3e-4), tmp_path)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(3e-4)
    cfg = load(swap('mmdet::deformable_detr/deformable-detr_r50_16xb2-50e_coco.py'), tmp_path)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(2e-4)
    assert cfg.optim_wrapper.optimizer.weight_decay == pytest.approx(1e-4)


def test_old_backbone_specific_settings_are_reset(tmp_path):
    # ConvNeXt-style layer-wise lr decay (by the old backbone's module names) and a whole-detector
    # load_from do not fit a Hiera detector
    base = tmp_path / 'convnext_like.py'
    base.write_text(
        "_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'\n"
        "load_from = 'retinanet_r50.pth'\n"
        "optim_wrapper = dict(_delete_=True, type='OptimWrapper',\n"
        "    constructor='LearningRateDecayOptimizerConstructor',\n"
        "    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05),\n"
        "    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6))\n")
    text = swap(str(base), out_file=str(tmp_path / 'swapped.py'))
    assert f'_base_ = {str(base)!r}' in text  # an absolute path stays as given
    cfg = load(text, tmp_path)
    assert cfg.load_from is None
    ow = cfg.optim_wrapper
    assert ow.constructor == 'DefaultOptimWrapperConstructor'
    assert ow.optimizer == dict(type='AdamW', lr=2e-4, weight_decay=0.05)  # AdamW kept
    assert dict(ow.paramwise_cfg) == dict(norm_decay_mult=0.0,
                                          custom_keys={'pos_embed': dict(decay_mult=0.0)})


def test_arch_checkpoint_and_drop_path(tmp_path):
    cfg = load(swap('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'base_plus'), tmp_path)
    assert cfg.model.backbone.init_cfg.checkpoint == 'hf://facebook/hiera-base-plus-224-hf'
    assert cfg.model.backbone.drop_path_rate == 0.2
    assert list(cfg.model.neck.in_channels) == [112, 224, 448, 896]
    cfg = load(swap('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'sam2_small',
                    checkpoint='checkpoints/sam2.1_hiera_small.pt', drop_path_rate=0.3),
               tmp_path)
    assert cfg.model.backbone.arch == 'sam2_small'
    assert cfg.model.backbone.init_cfg.checkpoint == 'checkpoints/sam2.1_hiera_small.pt'
    assert cfg.pretrained == 'checkpoints/sam2.1_hiera_small.pt'
    assert cfg.model.backbone.drop_path_rate == 0.3
    cfg = load(swap('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', 'abswin_small',
                    checkpoint='model.safetensors'), tmp_path)
    assert cfg.model.backbone.arch == 'abswin_small'
    assert cfg.model.backbone.drop_path_rate == 0.15  # as Hiera-S
    assert list(cfg.model.neck.in_channels) == [96, 192, 384, 768]


# ---- probing ------------------------------------------------------------------------------------
# (backbone, its strides and widths as published): ResNet-50's C2-C5 (He et al. 2016, Table 1:
# conv2_x..conv5_x at 1/4..1/32, 256..2048 channels); HRNetV2-W18's four branches (Wang et al.
# 2020: C, 2C, 4C, 8C = 18..144 channels at 1/4..1/32); EfficientNet-B3's stages 4-6 of its
# layer list (Tan & Le 2019 Table 1 widths 40, 112, 320 at strides 8, 16, 32, scaled by B3's 1.2
# and rounded to multiples of 8: 48, 136, 384)
PROBED = [
    ('faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', (4, 8, 16, 32), (256, 512, 1024, 2048)),
    ('hrnet/faster-rcnn_hrnetv2p-w18-1x_coco.py', (4, 8, 16, 32), (18, 36, 72, 144)),
    ('efficientnet/retinanet_effb3_fpn_8xb4-crop896-1x_coco.py', (8, 16, 32), (48, 136, 384)),
]


@pytest.mark.parametrize('config,strides,widths', PROBED, ids=[c[0] for c in PROBED])
def test_probe_reads_strides_and_widths(config, strides, widths):
    from hiera_mm_tools.frameworks import read_config
    from hiera_mm_tools.swap.analyse import read_model
    from hiera_mm_tools.swap.probe import probe_backbone

    name = f'mmdet::{config}'
    outputs = probe_backbone(read_model(read_config(name), name)['backbone'], name, 'mmdet')
    assert outputs.strides == strides and outputs.widths == widths
    assert outputs.stages == tuple({4: 0, 8: 1, 16: 2, 32: 3}[s] for s in strides)


class LayerListNet(torch.nn.Module):
    """PoolFormer's layout (Yu et al. 2022, as mmpretrain builds it): a stride-4 stem, then one
    list of layers alternating a stage and a stride-2 downsampling, out_indices counting in that
    list. Widths as PoolFormer-S12's 64, 128, 320, 512."""

    def __init__(self, out_indices=(0, 2, 4, 6), widths=(64, 128, 320, 512)):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, widths[0], 7, stride=4, padding=3)
        layers = []
        for i, width in enumerate(widths):
            layers.append(torch.nn.Conv2d(width, width, 3, padding=1))
            if i + 1 < len(widths):
                layers.append(torch.nn.Conv2d(width, widths[i + 1], 3, stride=2, padding=1))
        self.network = torch.nn.ModuleList(layers)
        self.out_indices = tuple(out_indices)

    def forward(self, x):
        x, outs = self.stem(x), []
        for i, layer in enumerate(self.network):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


@pytest.mark.parametrize('out_indices,in_channels,stages', [
    ((0, 2, 4, 6), [64, 128, 320, 512], ALL),
    ((2, 4, 6), [128, 320, 512], (1, 2, 3)),
])
def test_out_indices_into_a_layer_list_are_probed(out_indices, in_channels, stages, tmp_path):
    from mmdet.registry import MODELS

    MODELS.register_module(name='LayerListNet', module=LayerListNet, force=True)
    path = tmp_path / 'layer_list.py'
    path.write_text(
        "_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'\n"
        f"model = dict(backbone=dict(_delete_=True, type='LayerListNet', "
        f'out_indices={out_indices!r}),\n'
        f'             neck=dict(in_channels={in_channels!r}))\n')
    text = swap(str(path))
    strides = (4, 8, 16, 32)[-len(out_indices):]
    assert (f'backbone: LayerListNet (out_indices {out_indices}: maps at strides {strides}, '
            f'widths {tuple(in_channels)})') in text.replace('\n#     ', ' ')
    cfg = load(text, tmp_path)
    assert tuple(cfg.model.backbone.out_indices) == stages
    assert list(cfg.model.neck.in_channels) == [TINY_CHANNELS[i] for i in stages]


class PooledNet(torch.nn.Module):
    """A classifier trunk handing on one pooled vector, not a map."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)

    def forward(self, x):
        return (self.conv(x).mean((2, 3)),)


def swap_one_output_backbone(module, channels, tmp_path):
    """Swaps DETR's config with ``module`` (registered) as its backbone and a neck reading one
    map of ``channels``."""
    from mmdet.registry import MODELS

    MODELS.register_module(name=module.__name__, module=module, force=True)
    path = tmp_path / 'one_output.py'
    path.write_text(
        "_base_ = 'mmdet::detr/detr_r50_8xb2-150e_coco.py'\n"
        f"model = dict(backbone=dict(_delete_=True, type='{module.__name__}'),\n"
        f'             neck=dict(in_channels=[{channels}]))\n')
    return swap(str(path))


def test_refuses_outputs_that_are_not_maps(tmp_path):
    with pytest.raises(ValueError, match=r'PooledNet .*hands on \[\(1, 8\)\], not feature maps'):
        swap_one_output_backbone(PooledNet, 8, tmp_path)


class AnisotropicNet(torch.nn.Module):
    """Maps strided 8 in height and 4 in width (e.g. a text-line backbone): their width alone
    would read as stride 4."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, stride=(8, 4), padding=1)

    def forward(self, x):
        return (self.conv(x),)


def test_refuses_maps_strided_differently_in_height_and_width(tmp_path):
    with pytest.raises(ValueError, match=r"AnisotropicNet .*hands on maps at strides \('8x4',\) "
                                         r'.*not at strides 4, 8, 16, 32'):
        swap_one_output_backbone(AnisotropicNet, 16, tmp_path)


def test_refuses_maps_off_hiera_strides(tmp_path):
    # a ResNet whose stem is followed by four stride-2 stages: its maps are at 8..64
    path = tmp_path / 'stride64.py'
    path.write_text(
        "_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'\n"
        'model = dict(backbone=dict(strides=(2, 2, 2, 2)))\n')
    with pytest.raises(ValueError, match=r'hands on maps at strides \(8, 16, 32, 64\).*'
                                         r'strides=\(2, 2, 2, 2\).*not at strides 4, 8, 16, 32'):
        swap(str(path))


def test_refuses_in_channels_that_are_not_the_backbone_widths(tmp_path):
    path = tmp_path / 'wrong_widths.py'
    path.write_text(
        "_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'\n"
        'model = dict(neck=dict(in_channels=[256, 512, 1024, 1024]))\n')
    with pytest.raises(ValueError, match=r'neck FPN .*in_channels \[256, 512, 1024, 1024\].*'
                                         r'\[256, 512, 1024, 2048\] channels \(probed\)'):
        swap(str(path))


# ---- which framework a config is for ------------------------------------------------------------
def test_framework_of(tmp_path):
    from mmengine.config import Config

    from hiera_mm_tools.frameworks import framework_of

    assert framework_of('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py') == 'mmdet'
    assert framework_of('mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py') == 'mmseg'
    base = tmp_path / 'seg_base.py'  # no prefix: the (inherited) default_scope decides
    base.write_text("default_scope = 'mmseg'\nmodel = dict(type='EncoderDecoder')\n")
    local = tmp_path / 'seg.py'
    local.write_text("_base_ = './seg_base.py'\n")
    assert framework_of(str(local)) == 'mmseg'
    assert framework_of(Config.fromfile(str(local))) == 'mmseg'
    for name, text, found in [('none.py', 'model = dict()\n', 'no default_scope'),
                              ('cls.py', "default_scope = 'mmpretrain'\n",
                               "default_scope 'mmpretrain'")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=found + r".*Add default_scope = 'mmdet' \(or "
                                             r"'mmseg'\) to it, or inherit"):
            framework_of(str(tmp_path / name))


# ---- refusals -----------------------------------------------------------------------------------
def test_refuses_config_without_backbone(tmp_path):
    path = tmp_path / 'no_backbone.py'
    path.write_text("model = dict(type='RPN', neck=dict(type='FPN', in_channels=[1, 2]))\n")
    with pytest.raises(ValueError, match=r'no_backbone.py has no model.backbone to replace'):
        swap(str(path))


def test_refuses_yolox():
    with pytest.raises(ValueError, match=r'neck YOLOXPAFPN .*cannot adapt.*CSPDarknet.*by hand'):
        swap('mmdet::yolox/yolox_s_8xb8-300e_coco.py')


def test_refuses_five_stage_out_indices(tmp_path):
    path = tmp_path / 'five_stages.py'
    path.write_text(
        "model = dict(type='RetinaNet',\n"
        "             backbone=dict(type='ResNet', depth=50, out_indices=(0, 1, 2, 3, 4)),\n"
        "             neck=dict(type='FPN', in_channels=[64, 256, 512, 1024, 2048],\n"
        "                       out_channels=256, num_outs=5))\n")
    with pytest.raises(ValueError, match=r'out_indices \(0, 1, 2, 3, 4\): Hiera cannot give'):
        swap(str(path))


@pytest.mark.parametrize('config,match', [
    ('faster_rcnn/faster-rcnn_r50-caffe_c4-1x_coco.py', r'has no neck .*read the backbone'),
    ('ssd/ssd300_coco.py', r'neck SSDNeck'),
    ('rtmdet/rtmdet_tiny_8xb32-300e_coco.py', r'neck CSPNeXtPAFPN'),
])
def test_refuses_what_it_cannot_map(config, match):
    with pytest.raises(ValueError, match=match):
        swap(f'mmdet::{config}')


def test_refuses_dilated_resnet(tmp_path):
    path = tmp_path / 'dilated.py'
    path.write_text(
        "model = dict(type='RetinaNet',\n"
        "             backbone=dict(type='ResNet', depth=50, strides=(1, 2, 2, 1),\n"
        "                           dilations=(1, 1, 1, 2)),\n"
        "             neck=dict(type='FPN', in_channels=[256, 512, 1024, 2048],\n"
        "                       out_channels=256, num_outs=5))\n")
    with pytest.raises(ValueError, match=r'strides=\(1, 2, 2, 1\).*not at strides 4, 8, 16, 32'):
        swap(str(path))


def test_refuses_sam2_without_checkpoint_and_unknown_arch():
    with pytest.raises(ValueError, match=r"'sam2_tiny' is a SAM2 trunk.*--checkpoint"):
        swap('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', 'sam2_tiny')
    with pytest.raises(ValueError, match=r"'abswin_base' is timm's hiera_base_abswin_256.*--checkpoint"):
        swap('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', 'abswin_base')
    with pytest.raises(ValueError, match=r"unknown Hiera arch 'giant'"):
        swap('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', 'giant')


# ---- command line, local paths ------------------------------------------------------------------
def test_cli_writes_loadable_config_with_relative_base(tmp_path, capsys, monkeypatch):
    import swap_backbone as cli  # tools/ is on sys.path (conftest)
    from mmengine.config import Config

    # a local config, given relative to the working directory, written into another folder
    (tmp_path / 'cfgs').mkdir()
    (tmp_path / 'cfgs' / 'local.py').write_text(
        "_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'\n"
        'model = dict(bbox_head=dict(num_classes=3))\n')
    monkeypatch.chdir(tmp_path)
    assert cli.main(['cfgs/local.py', '--arch', 'small', '--out', 'out/new.py',
                     '--drop-path', '0.05', '--lr', '2e-4']) == 0
    printed = capsys.readouterr().out
    assert 'Wrote out/new.py' in printed and 'lr rule' in printed
    text = (tmp_path / 'out' / 'new.py').read_text()
    assert "_base_ = '../cfgs/local.py'" in text
    cfg = Config.fromfile(str(tmp_path / 'out' / 'new.py'))
    assert cfg.model.bbox_head.num_classes == 3  # the local config's own change is inherited
    assert cfg.model.backbone.arch == 'small' and cfg.model.backbone.drop_path_rate == 0.05
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(2e-4)

    assert cli.main(['cfgs/local.py', '--arch', 'tiny', '--out', 'cfgs/local.py']) == 2
    assert 'must differ from CONFIG' in capsys.readouterr().err

    assert cli.main(['mmdet::yolox/yolox_s_8xb8-300e_coco.py', '--arch', 'tiny',
                     '--out', 'out/yolox.py']) == 2
    assert 'refused: neck YOLOXPAFPN' in capsys.readouterr().err
    assert not (tmp_path / 'out' / 'yolox.py').exists()
