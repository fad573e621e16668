"""Reading the base config: the merged config, its framework, the backbone, its stages and
which of them the part reading the backbone (a neck, a head) reads."""
from __future__ import annotations

import os.path as osp
import tempfile
from dataclasses import dataclass
from typing import Any, Optional

from .literals import plain

# Backbones whose out_indices 0..3 are stages at strides 4, 8, 16, 32 (as Hiera's), with the
# out_indices they emit by default (MMDetection's names; a framework's planner adds its own).
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
# default_scope -> the framework whose planner adapts the config (anything else: MMDetection)
FRAMEWORK_SCOPES = {'mmseg': 'mmseg', 'mmdet': 'mmdet'}


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


def short_type(type_: Any, scope: str = 'mmdet') -> str:
    """'mmdet.FPN' -> 'FPN' (``scope``: the framework's own; other scopes, e.g.
    'mmpretrain.ConvNeXt', are kept)."""
    name = type_ if isinstance(type_, str) else getattr(type_, '__name__', repr(type_))
    return name[len(scope) + 1:] if name.startswith(scope + '.') else name


def read_config(config: str):
    """The merged original config: ``Config.fromfile`` on a temporary file inheriting it (which
    also resolves ``mmdet::`` / ``mmseg::`` paths, which ``Config.fromfile`` alone does not).
    Its ``custom_imports`` are not imported: reading needs none of them (e.g. mmpretrain for a
    ConvNeXt backbone that the swap replaces)."""
    from mmengine.config import Config

    if '::' not in config and not osp.isfile(config):
        raise FileNotFoundError(f'config {config} not found')
    base = config if '::' in config else osp.abspath(config)
    with tempfile.TemporaryDirectory() as tmp:
        probe = osp.join(tmp, 'swap_probe.py')
        with open(probe, 'w') as f:
            f.write(f'_base_ = {base!r}\n')
        return Config.fromfile(probe, import_custom_modules=False)


def framework_of(config: str, cfg=None) -> str:
    """'mmseg' or 'mmdet': the framework a config is written for, by its ``mmseg::`` /
    ``mmdet::`` prefix, else by its ``default_scope`` (MMDetection where it has none)."""
    prefix = config.split('::', 1)[0] if '::' in config else None
    if prefix in FRAMEWORK_SCOPES:
        return FRAMEWORK_SCOPES[prefix]
    cfg = read_config(config) if cfg is None else cfg
    return FRAMEWORK_SCOPES.get(cfg.get('default_scope'), 'mmdet')


def read_model(cfg, config: str) -> dict:
    """``model`` of the merged config as plain Python; refused without a ``model.backbone``."""
    model = plain(cfg.get('model')) if isinstance(cfg.get('model'), dict) else None
    if not model or not isinstance(model.get('backbone'), dict):
        raise ValueError(f'config {config} has no model.backbone to replace')
    return model


def read_optim_wrapper(cfg) -> Optional[dict]:
    """``optim_wrapper`` of the merged config as plain Python (None: the base has none)."""
    return plain(cfg.get('optim_wrapper')) if isinstance(cfg.get('optim_wrapper'), dict) else None


def backbone_stages(backbone: dict, config: str, known: Optional[dict] = None,
                    default_strides: Optional[dict] = None, scope: str = 'mmdet') -> tuple:
    """The original backbone's out_indices as Hiera stages (0..3 = strides 4..32); refused
    where they are not among four stride-4..32 stages (dilated / re-strided ResNets, backbone
    types whose stage layout is unknown here). ``known`` / ``default_strides``: the tables of
    the framework's backbones (default ``FOUR_STAGE_BACKBONES`` / ``DEFAULT_STRIDES``)."""
    known = FOUR_STAGE_BACKBONES if known is None else known
    default_strides = DEFAULT_STRIDES if default_strides is None else default_strides
    btype = short_type(backbone.get('type'), scope)
    out = backbone.get('out_indices', known.get(btype))
    if isinstance(out, int):
        out = (out,)
    if out is not None:
        out = tuple(int(i) % 4 if -4 <= int(i) < 0 else int(i) for i in out)
        if not out or len(out) > 4 or any(not 0 <= i <= 3 for i in out) or len(set(out)) < len(out):
            raise ValueError(
                f'backbone {btype} of {config} emits out_indices {tuple(out)}: Hiera cannot give '
                'these, it has 4 stages (out_indices 0..3 = strides 4, 8, 16, 32, each once). '
                'Edit the config by hand.')
    if btype not in known:
        raise ValueError(
            f'backbone {btype} of {config}: its stage layout is unknown to swap_backbone (it '
            f'maps the stages of {", ".join(sorted(known))}, i.e. stages at '
            'strides 4..32); edit the config by hand.')
    for key, default in (('strides', default_strides.get(btype)), ('dilations', (1, 1, 1, 1))):
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
