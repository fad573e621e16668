"""Reading the base config: the merged config, the backbone's stages and who reads them."""
from __future__ import annotations

import os.path as osp
import tempfile
from dataclasses import dataclass
from typing import Any, Optional

from .literals import plain

# Backbones whose out_indices 0..3 are stages at strides 4, 8, 16, 32 (as Hiera's), with the
# out_indices they emit by default.
FOUR_STAGE_BACKBONES = {
    'ResNet': (0, 1, 2, 3), 'ResNetV1d': (0, 1, 2, 3), 'ResNeXt': (0, 1, 2, 3),
    'Res2Net': (0, 1, 2, 3), 'ResNeSt': (0, 1, 2, 3), 'DetectoRS_ResNet': (0, 1, 2, 3),
    'DetectoRS_ResNeXt': (0, 1, 2, 3), 'RegNet': (0, 1, 2, 3),
    'SwinTransformer': (0, 1, 2, 3), 'PyramidVisionTransformer': (0, 1, 2, 3),
    'PyramidVisionTransformerV2': (0, 1, 2, 3), 'HieraBackbone': (0, 1, 2, 3),
    'mmpretrain.ConvNeXt': (3,), 'mmcls.ConvNeXt': (3,),
}
# Default per-stage strides / dilations: other values move stages off strides 4..32.
DEFAULT_STRIDES = {'ResNet': (1, 2, 2, 2), 'ResNetV1d': (1, 2, 2, 2), 'ResNeXt': (1, 2, 2, 2),
                   'Res2Net': (1, 2, 2, 2), 'ResNeSt': (1, 2, 2, 2),
                   'DetectoRS_ResNet': (1, 2, 2, 2), 'DetectoRS_ResNeXt': (1, 2, 2, 2),
                   'RegNet': (2, 2, 2, 2), 'SwinTransformer': (4, 2, 2, 2)}
# Necks taking a list of in_channels, one per backbone output they are given, that read levels
# start_level..end_level of them (default start_level) ...
LEVEL_NECKS = {'FPN': 0, 'PAFPN': 0, 'FPN_CARAFE': 0, 'FPN_DropBlock': 0, 'NASFPN': 0}
# ... or all of them ...
ALL_LEVEL_NECKS = {'ChannelMapper'}
# ... and necks with one int in_channels that read the last backbone output only.
LAST_LEVEL_NECKS = {'DilatedEncoder', 'CTResNetNeck'}
# Heads without a neck that take a list of in_channels (all backbone outputs).
NECKLESS_HEADS = ('panoptic_head',)
NECK_REASONS = {
    'YOLOXPAFPN': "it is built for CSPDarknet's stages and widths (with YOLOX's width "
                  'multipliers and recipe)',
    'CSPNeXtPAFPN': "it is built for CSPNeXt's stages and widths (with RTMDet's width "
                    'multipliers and recipe)',
    'YOLOV3Neck': "it is built for Darknet-53's stages and widths",
    'SSDNeck': "it extends SSDVGG's feature maps with layers of its own",
    'HRFPN': "it takes HRNet's parallel branches",
    'RFP': 'recursive feature pyramids feed features back into a DetectoRS backbone',
}


@dataclass
class Consumer:
    """The part of the model that reads the backbone's features (a neck or a neckless head).

    ``mode``: 'levels' (FPN-like: inputs start_level..end_level of its in_channels), 'all' (all
    of them) or 'last' (one int in_channels, the last backbone output)."""
    where: str  # its key in ``model``
    type: str
    in_channels: list
    mode: str
    is_list: bool = False  # a list of necks, this the first
    start_level: int = 0
    end_level: int = -1


def short_type(type_: Any) -> str:
    """'mmdet.FPN' -> 'FPN' (other scopes, e.g. 'mmpretrain.ConvNeXt', are kept)."""
    name = type_ if isinstance(type_, str) else getattr(type_, '__name__', repr(type_))
    return name[len('mmdet.'):] if name.startswith('mmdet.') else name


def read_config(config: str):
    """The merged original config: ``Config.fromfile`` on a temporary file inheriting it (which
    also resolves ``mmdet::`` paths, which ``Config.fromfile`` alone does not)."""
    from mmengine.config import Config

    if '::' not in config and not osp.isfile(config):
        raise FileNotFoundError(f'config {config} not found')
    base = config if '::' in config else osp.abspath(config)
    with tempfile.TemporaryDirectory() as tmp:
        probe = osp.join(tmp, 'swap_probe.py')
        with open(probe, 'w') as f:
            f.write(f'_base_ = {base!r}\n')
        return Config.fromfile(probe)


def read_model(cfg, config: str) -> dict:
    """``model`` of the merged config as plain Python; refused without a ``model.backbone``."""
    model = plain(cfg.get('model')) if isinstance(cfg.get('model'), dict) else None
    if not model or not isinstance(model.get('backbone'), dict):
        raise ValueError(f'config {config} has no model.backbone to replace')
    return model


def read_optim_wrapper(cfg) -> Optional[dict]:
    """``optim_wrapper`` of the merged config as plain Python (None: the base has none)."""
    return plain(cfg.get('optim_wrapper')) if isinstance(cfg.get('optim_wrapper'), dict) else None


def _level_neck(first: dict, ntype: str, is_list: bool, config: str) -> Consumer:
    in_channels = first.get('in_channels')
    if not isinstance(in_channels, (list, tuple)) or not in_channels:
        raise ValueError(f'neck {ntype} of {config}: in_channels {in_channels!r} is not '
                         'a list of channels; cannot adapt it, edit the config by hand')
    mode = 'levels' if ntype in LEVEL_NECKS else 'all'
    return Consumer('neck', ntype, list(in_channels), mode, is_list,
                    start_level=first.get('start_level', LEVEL_NECKS.get(ntype, 0)),
                    end_level=first.get('end_level', -1))


def _neck_consumer(neck, config: str) -> Consumer:
    is_list = isinstance(neck, (list, tuple))
    first = dict(neck[0] if is_list else neck)
    ntype = short_type(first.get('type'))
    if ntype in LEVEL_NECKS or ntype in ALL_LEVEL_NECKS:
        return _level_neck(first, ntype, is_list, config)
    if ntype in LAST_LEVEL_NECKS:
        if not isinstance(first.get('in_channels'), int):
            raise ValueError(f'neck {ntype} of {config}: expected one int in_channels, got '
                             f"{first.get('in_channels')!r}; edit the config by hand")
        return Consumer('neck', ntype, [first['in_channels']], 'last', is_list)
    known = sorted(LEVEL_NECKS) + sorted(ALL_LEVEL_NECKS) + sorted(LAST_LEVEL_NECKS)
    why = NECK_REASONS.get(ntype, 'its inputs are not known to map onto backbone stages')
    raise ValueError(
        f'neck {ntype} of {config}: cannot adapt it to Hiera automatically ({why}); '
        f'swap_backbone adapts the inputs of {", ".join(known)} and panoptic_head. '
        'Edit the config by hand.')


def find_consumer(model: dict, config: str) -> Consumer:
    """Who reads the backbone's features: the first neck, or a neckless head (Mask2Former /
    MaskFormer's panoptic_head); refused where the inputs cannot be mapped onto Hiera's stages
    safely (YOLOX / CSPNeXt / SSD / HRNet / RFP necks, heads reading the backbone directly)."""
    if model.get('neck') is not None:
        return _neck_consumer(model['neck'], config)
    for head in NECKLESS_HEADS:
        head_cfg = model.get(head)
        if isinstance(head_cfg, dict) and isinstance(head_cfg.get('in_channels'), (list, tuple)):
            return Consumer(head, short_type(head_cfg.get('type')),
                            list(head_cfg['in_channels']), 'all')
    heads = [k for k in model if k.endswith('_head') and isinstance(model[k], dict)]
    raise ValueError(
        f'{config} has no neck (nor a panoptic_head with an in_channels list): its heads '
        f"({', '.join(heads) or 'none'}) read the backbone's features directly (e.g. a C4 RoI "
        'head with a ResNet stage of its own); cannot adapt them to Hiera automatically, edit '
        'the config by hand.')


def backbone_stages(backbone: dict, config: str) -> tuple:
    """The original backbone's out_indices as Hiera stages (0..3 = strides 4..32); refused
    where they are not among four stride-4..32 stages (dilated / re-strided ResNets, backbone
    types whose stage layout is unknown here)."""
    btype = short_type(backbone.get('type'))
    out = backbone.get('out_indices', FOUR_STAGE_BACKBONES.get(btype))
    if isinstance(out, int):
        out = (out,)
    if out is not None:
        out = tuple(int(i) % 4 if -4 <= int(i) < 0 else int(i) for i in out)
        if not out or len(out) > 4 or any(not 0 <= i <= 3 for i in out) or len(set(out)) < len(out):
            raise ValueError(
                f'backbone {btype} of {config} emits out_indices {tuple(out)}: Hiera cannot give '
                'these, it has 4 stages (out_indices 0..3 = strides 4, 8, 16, 32, each once). '
                'Edit the config by hand.')
    if btype not in FOUR_STAGE_BACKBONES:
        raise ValueError(
            f'backbone {btype} of {config}: its stage layout is unknown to swap_backbone (it '
            f'maps the stages of {", ".join(sorted(FOUR_STAGE_BACKBONES))}, i.e. stages at '
            'strides 4..32); edit the config by hand.')
    for key, default in (('strides', DEFAULT_STRIDES.get(btype)), ('dilations', (1, 1, 1, 1))):
        value = backbone.get(key)
        if value is not None and default is not None and tuple(value) != default[:len(value)]:
            raise ValueError(
                f'backbone {btype} of {config} has {key}={tuple(value)} (default {default}): its '
                'stages are not at strides 4, 8, 16, 32 like Hiera\'s (e.g. a dilated C5); edit '
                'the config by hand.')
    return out


def stages_read(consumer: Consumer, backbone_out: tuple, backbone_type: str,
                config: str) -> tuple:
    """(given, read): the stages the consumer is given (the last ``len(in_channels)`` of the
    backbone's out_indices: ResNet-like stage i = Hiera stage i) and those it reads (FPN-like
    necks: levels start_level..end_level of them)."""
    n = len(consumer.in_channels)
    if n > len(backbone_out):
        raise ValueError(
            f'{consumer.where} {consumer.type} of {config} takes {n} inputs but backbone '
            f'{backbone_type} emits only out_indices {backbone_out}; edit the config by hand.')
    given = backbone_out[-n:]
    if consumer.mode == 'last':
        return given, given[-1:]
    if consumer.mode == 'all':
        return given, given
    start, end = consumer.start_level, consumer.end_level
    stop = n if end in (-1, n - 1) else end + 1
    if not 0 <= start < stop <= n:
        raise ValueError(f'neck {consumer.type} of {config}: start_level {start} / '
                         f'end_level {end} do not fit its {n} inputs; edit by hand.')
    return given, given[start:stop]
