"""Hiera in Detectron2's yacs configs: ``MODEL.HIERA.*`` keys and backbone builders.

Usage (as Detectron2's projects do with their ``add_*_config``)::

    from hiera_mm.detectron2 import get_hiera_cfg      # or: cfg = get_cfg(); add_hiera_config(cfg)
    cfg = get_hiera_cfg()
    cfg.merge_from_file('configs/detectron2/yacs/mask_rcnn_hiera_t_fpn_1x.yaml')
    model = detectron2.modeling.build_model(cfg)

Keys (defaults in brackets): ``MODEL.HIERA.ARCH`` ['tiny'], ``OUT_FEATURES``
[stage1..stage4], ``OUT_NORM`` [True], ``FROZEN_STAGES`` [-1], ``DROP_PATH_RATE`` [0.0],
``WITH_CP`` [False], ``ATTENTION`` ['exact'], ``GLOBAL_BLOCKS`` [[] = the arch's default],
``SQUARE_PAD`` [0; also given to the FPN], and ``EMBED_DIM`` / ``DEPTHS`` / ``NUM_HEADS``
[0 / [] / [] = the arch's own] to change the arch's width and depths.

Builders registered in ``BACKBONE_REGISTRY``: ``build_hiera_backbone`` (the bare backbone),
``build_hiera_fpn_backbone`` (FPN with P6 by max-pool, for Mask / Faster R-CNN) and
``build_retinanet_hiera_fpn_backbone`` (FPN with P6/P7 from stage 4, for RetinaNet).

``_BASE_`` in yacs files is a path relative to the file (or absolute); Detectron2 has no name
for the model-zoo files it ships. ``get_hiera_cfg()`` returns a config whose loader also accepts
``_BASE_: "model_zoo://<path in detectron2's model-zoo configs>"`` (resolved with
``detectron2.model_zoo.get_config_file``), which is how the yaml files under
``configs/detectron2/yacs/`` inherit ``Base-RCNN-FPN.yaml``.
"""
from __future__ import annotations

from detectron2.config import CfgNode, get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN
from detectron2.modeling.backbone.fpn import LastLevelMaxPool, LastLevelP6P7

from ..archs import ARCH_SETTINGS
from .backbone import HieraBackbone

__all__ = ['add_hiera_config', 'get_hiera_cfg', 'HieraCfgNode', 'build_hiera_backbone',
           'build_hiera_fpn_backbone', 'build_retinanet_hiera_fpn_backbone', 'MODEL_ZOO_PREFIX']

MODEL_ZOO_PREFIX = 'model_zoo://'


def add_hiera_config(cfg: CfgNode) -> CfgNode:
    """Add the ``MODEL.HIERA`` keys (with defaults) to a Detectron2 config; returns it."""
    hiera = type(cfg.MODEL)()
    hiera.ARCH = 'tiny'
    hiera.EMBED_DIM = 0  # 0: the arch's own
    hiera.DEPTHS = []  # []: the arch's own
    hiera.NUM_HEADS = []  # []: the arch's own
    hiera.OUT_FEATURES = ['stage1', 'stage2', 'stage3', 'stage4']
    hiera.OUT_NORM = True
    hiera.FROZEN_STAGES = -1
    hiera.DROP_PATH_RATE = 0.0
    hiera.WITH_CP = False
    hiera.ATTENTION = 'exact'
    hiera.GLOBAL_BLOCKS = []  # []: the arch's / attention mode's default
    hiera.SQUARE_PAD = 0
    cfg.MODEL.HIERA = hiera
    return cfg


class HieraCfgNode(CfgNode):
    """Detectron2's ``CfgNode`` whose ``_BASE_`` may name a model-zoo file as ``model_zoo://...``."""

    @classmethod
    def load_yaml_with_base(cls, filename: str, allow_unsafe: bool = False):
        # Detectron2 joins a relative _BASE_ to the including file's folder first.
        if MODEL_ZOO_PREFIX in filename:
            from detectron2.model_zoo import get_config_file
            filename = get_config_file(filename.split(MODEL_ZOO_PREFIX, 1)[1])
        return super().load_yaml_with_base(filename, allow_unsafe=allow_unsafe)


def get_hiera_cfg() -> HieraCfgNode:
    """Detectron2's default config plus ``MODEL.HIERA``, able to read ``model_zoo://`` bases."""
    return HieraCfgNode(add_hiera_config(get_cfg()))


def _arch(cfg: CfgNode):
    h = cfg.MODEL.HIERA
    if h.ARCH not in ARCH_SETTINGS:  # the core's message would name no yacs key
        raise ValueError(f'MODEL.HIERA.ARCH {h.ARCH!r} is not a Hiera arch; choose one of '
                         f'{sorted(ARCH_SETTINGS)} (MODEL.HIERA.EMBED_DIM, DEPTHS and NUM_HEADS '
                         'then override its settings)')
    if not (h.EMBED_DIM or h.DEPTHS or h.NUM_HEADS):
        return h.ARCH
    arch = dict(ARCH_SETTINGS[h.ARCH])
    if h.EMBED_DIM:
        arch['embed_dim'] = int(h.EMBED_DIM)
    if h.DEPTHS:
        arch['depths'] = tuple(int(d) for d in h.DEPTHS)
    if h.NUM_HEADS:
        arch['num_heads'] = tuple(int(n) for n in h.NUM_HEADS)
    return arch


def _out_indices(features) -> tuple[int, ...]:
    indices = []
    for name in features:
        if not (isinstance(name, str) and name.startswith('stage') and name[5:].isdigit()
                and int(name[5:]) >= 1):
            raise ValueError(f"MODEL.HIERA.OUT_FEATURES entry {name!r} is not a Hiera feature "
                             "name; use 'stage1' (stride 4) .. 'stage4' (stride 32)")
        indices.append(int(name[5:]) - 1)
    return tuple(indices)


@BACKBONE_REGISTRY.register()
def build_hiera_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> HieraBackbone:
    """``HieraBackbone`` from ``cfg.MODEL.HIERA`` (features ``'stage1'`` .. ``'stage4'``)."""
    if 'HIERA' not in cfg.MODEL:
        raise KeyError('cfg.MODEL.HIERA is missing: call hiera_mm.detectron2.add_hiera_config(cfg) '
                       'before merging a Hiera config file (or use get_hiera_cfg())')
    if input_shape.channels not in (None, 3):
        raise ValueError(f'Hiera takes 3-channel images, the config gives {input_shape.channels} '
                         '(len(MODEL.PIXEL_MEAN))')
    h = cfg.MODEL.HIERA
    return HieraBackbone(arch=_arch(cfg), out_indices=_out_indices(h.OUT_FEATURES),
                         out_norm=h.OUT_NORM, frozen_stages=h.FROZEN_STAGES,
                         drop_path_rate=h.DROP_PATH_RATE, with_cp=h.WITH_CP,
                         attention=h.ATTENTION, global_blocks=tuple(h.GLOBAL_BLOCKS) or None,
                         square_pad=h.SQUARE_PAD)


@BACKBONE_REGISTRY.register()
def build_hiera_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> FPN:
    """FPN over ``build_hiera_backbone`` (``MODEL.FPN.IN_FEATURES`` names Hiera stages), P6 by
    max-pooling P5: the Mask / Faster R-CNN neck."""
    return FPN(bottom_up=build_hiera_backbone(cfg, input_shape),
               in_features=cfg.MODEL.FPN.IN_FEATURES, out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
               norm=cfg.MODEL.FPN.NORM, top_block=LastLevelMaxPool(),
               fuse_type=cfg.MODEL.FPN.FUSE_TYPE, square_pad=cfg.MODEL.HIERA.SQUARE_PAD)


@BACKBONE_REGISTRY.register()
def build_retinanet_hiera_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> FPN:
    """FPN over ``build_hiera_backbone`` with P6/P7 computed from the last stage (RetinaNet)."""
    bottom_up = build_hiera_backbone(cfg, input_shape)
    last = bottom_up._out_features[-1]
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    return FPN(bottom_up=bottom_up, in_features=cfg.MODEL.FPN.IN_FEATURES,
               out_channels=out_channels, norm=cfg.MODEL.FPN.NORM,
               top_block=LastLevelP6P7(bottom_up.output_shape()[last].channels, out_channels,
                                       in_feature=last),
               fuse_type=cfg.MODEL.FPN.FUSE_TYPE, square_pad=cfg.MODEL.HIERA.SQUARE_PAD)
