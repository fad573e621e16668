"""Put a Hiera backbone into any MMDetection config: writes a config that inherits the given one.

``swap_backbone(config, arch)`` returns the text of a new config whose ``_base_`` is ``config``
(a path or an ``mmdet::`` string) and which states only what differs; ``tools/swap_backbone.py``
is the command line around it. What the new config changes, and the rules behind it:

* ``custom_imports``: ``hiera_mm.mmdet`` is added (imports of the base kept), failures are fatal.
* Hooks, so that every launcher gives the same run: ``FiniteLossHook`` and
  ``TrustRunCheckpointsHook`` join the base's ``custom_hooks`` (written in full, the base's
  first); ``default_hooks.checkpoint`` becomes ``AtomicCheckpointHook`` (same options) where the
  base uses mmengine's ``CheckpointHook``.
* ``model.backbone``: replaced (``_delete_=True``) by ``HieraBackbone`` of the chosen arch, with
  the pretrained weights of the arch (``hf://facebook/hiera-<size>-224-hf``; SAM2 trunks and
  timm's abswin models need an explicit checkpoint) and a drop-path rate per size (tiny 0.1,
  small 0.15, base / base_plus 0.2, large 0.4, huge 0.5, as this project's configs; SAM2 trunks
  and abswin models as their size).
* Stages: the consumer of the backbone's features is found (the first neck, or Mask2Former /
  MaskFormer's ``panoptic_head`` which has no neck). A consumer with ``n`` ``in_channels``
  entries reads the last ``n`` of the original backbone's ``out_indices`` (ResNet and the like:
  stage 0..3 = stride 4..32, as Hiera's). FPN-like necks read only levels ``start_level`` to
  ``end_level`` of them; Hiera emits exactly those stages and the neck gets ``start_level=0``
  (same network: an FPN with ``start_level=1`` over four inputs is the one with
  ``start_level=0`` over the last three). Unlike a ResNet stage, a Hiera stage output that
  nobody reads leaves its output LayerNorm without a gradient, which DDP rejects.
  The consumer's ``in_channels`` become Hiera's widths of those stages (``embed_dim * 2**i``).
  Refused (``ValueError`` with the reason): configs without ``model.backbone``; necks whose
  inputs cannot be mapped safely (YOLOX / CSPNeXt / YOLOv3 / SSD / HRNet / RFP necks, ...) and
  models without a neck whose heads read the backbone directly (e.g. C4 RoI heads); backbones
  whose ``out_indices`` are not among four stride-4..32 stages, dilated / re-strided ResNets,
  and backbone types whose stage layout is unknown here.
* ``model.data_preprocessor``: Hiera's normalisation (RGB from the BGR images the pipeline loads,
  ImageNet mean / std), also over Caffe-style bases; only ``mean``, ``std``, ``bgr_to_rgb`` and,
  where it is not a multiple of 32, ``pad_size_divisor`` are stated (Hiera pads every input to
  whole mask units of 32 pixels itself; padded batches make that a no-op and keep padding masks
  aligned with the features). Everything else (batch augments, mask padding) is inherited.
* Optimizer: AdamW. Learning rate rule: a base that already uses AdamW keeps its optimizer as
  it is (lr, weight decay, betas: e.g. DETR-family recipes, tuned for their heads), otherwise
  ``AdamW(lr, betas=(0.9, 0.999), weight_decay=0.05)`` with ``lr = 1e-4 * B / 16``, where
  1e-4 is the Swin / Hiera Mask R-CNN lr for a total batch of 16 and ``B`` is the base's
  ``auto_scale_lr.base_batch_size`` (16 when it has none). ``lr`` overrides both cases.
  The wrapper type (``AmpOptimWrapper`` ...), ``clip_grad`` and the schedule are inherited; a
  constructor that assigns lr by the old backbone's module names (ConvNeXt's layer-wise decay)
  becomes the default one, its decay keys dropped.
* ``paramwise_cfg`` (written in full, ``_delete_=True``): the base's settings are merged, not
  dropped: its ``custom_keys`` stay, ``norm_decay_mult=0.`` and ``'pos_embed':
  dict(decay_mult=0.)`` are added; the SGD-only ``bias_lr_mult`` / ``bias_decay_mult`` go when
  SGD (or another optimizer) is replaced. mmengine gives a parameter the settings of the
  longest custom key contained in its name only, and then skips ``norm_decay_mult``; so where an
  inherited key (DETR's ``'backbone': dict(lr_mult=0.1)``) would decide Hiera's position
  embeddings or LayerNorms, keys of their own are added (e.g. ``'backbone.trunk.pos_embed'``,
  ``'backbone.trunk.blocks.3.norm'``) carrying the inherited settings plus ``decay_mult=0.``.
* A ``load_from`` of the base (a whole detector with the old backbone) is reset to ``None``; the
  top-level ``pretrained`` names the Hiera checkpoint.
"""
from __future__ import annotations

import math
import os.path as osp
import tempfile
import textwrap
from dataclasses import dataclass, field
from typing import Any, Optional

from ..models.hiera import ARCH_SETTINGS, IMAGENET_MEAN, IMAGENET_STD

__all__ = ['swap_backbone', 'plan_swap', 'SwapPlan', 'HUB_CHECKPOINTS', 'DEFAULT_DROP_PATH',
           'LR_RULE']

HUB_CHECKPOINTS = {size: f"hf://facebook/hiera-{size.replace('_', '-')}-224-hf"
                   for size in ('tiny', 'small', 'base', 'base_plus', 'large', 'huge')}
DEFAULT_DROP_PATH = {'tiny': 0.1, 'small': 0.15, 'base': 0.2, 'base_plus': 0.2, 'large': 0.4,
                     'huge': 0.5}
HIERA_SIZE_DIVISOR = 32  # patch stride 4 x mask unit 8: Hiera pads inputs to multiples of this
# What every Hiera run declares, so that all launchers (ours, mmdet's tools, mim, Runner.from_cfg)
# register the same hooks (hiera_mm.mmdet.hooks).
RUN_HOOKS = ('FiniteLossHook', 'TrustRunCheckpointsHook')
REFERENCE_LR, REFERENCE_BATCH = 1e-4, 16
LR_RULE = ('lr rule: a base that already uses AdamW keeps its optimizer (lr, weight decay); '
           'otherwise AdamW(lr=1e-4 * auto_scale_lr.base_batch_size / 16, betas=(0.9, 0.999), '
           'weight_decay=0.05) (1e-4 = Swin/Hiera Mask R-CNN lr at batch 16; base_batch_size 16 '
           'if the base has no auto_scale_lr); --lr overrides both')

DEFAULT_CONSTRUCTOR = 'DefaultOptimWrapperConstructor'
# paramwise_cfg keys of layer-wise lr decay constructors (mmdet's for ConvNeXt, BEiT-like ones)
LAYER_DECAY_KEYS = ('decay_rate', 'decay_type', 'num_layers', 'layer_decay_rate')
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
class SwapPlan:
    """What ``swap_backbone`` decided: the new config's text and one line per decision."""
    base: str
    arch: str
    text: str = ''
    decisions: list = field(default_factory=list)


class _Code(str):
    """A value written into the config as code (e.g. a variable name), not as a literal."""


class _Braces(dict):
    """A dict written as ``{'key': value}`` (keys that are not identifiers, e.g. custom_keys);
    ``extra`` holds further items as code (e.g. a ``**{... for i in range(n)}`` unpacking)."""

    extra: tuple = ()


# ----------------------------------------------------------------------------------------------
# Writing Python literals
def _plain(value: Any) -> Any:
    """ConfigDict / tuples / lists -> plain Python containers (recursively)."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, _Braces):
        out = _Braces((k, _plain(v)) for k, v in value.items())
        out.extra = value.extra
        return out
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _is_kwarg(key: Any) -> bool:
    import keyword
    return isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)


def _items(value):
    """(prefix, items as (key-text or None, value), suffix) of a container."""
    if isinstance(value, dict):
        if not isinstance(value, _Braces) and all(_is_kwarg(k) for k in value):
            return 'dict(', [(f'{k}=', v) for k, v in value.items()], ')'
        return '{', [(f'{k!r}: ', v) for k, v in value.items()], '}'
    if isinstance(value, tuple):
        return '(', [('', v) for v in value], ',)' if len(value) == 1 else ')'
    return '[', [('', v) for v in value], ']'


def _fmt(value: Any, indent: int = 0, col: Optional[int] = None, width: int = 98) -> str:
    """Python source of a config value starting at column ``col`` of a line indented by
    ``indent``: on one line if it fits, else one item per line."""
    col = indent if col is None else col
    if isinstance(value, _Code):
        return str(value)
    if not isinstance(value, (dict, list, tuple)):
        return repr(value)
    prefix, items, suffix = _items(value)
    extra = getattr(value, 'extra', ())
    one_line = prefix + ', '.join(k + _fmt(v, 0, 0, 10 ** 6) for k, v in items) + suffix
    if (col + len(one_line) <= width or not items) and not extra:
        return one_line
    pad = ' ' * (indent + 4)
    lines = [pad + k + _fmt(v, indent + 4, indent + 4 + len(k), width) + ',' for k, v in items]
    lines += [pad + line for line in extra]
    return prefix + '\n' + '\n'.join(lines) + '\n' + ' ' * indent + suffix.lstrip(',')


# ----------------------------------------------------------------------------------------------
def _short_type(type_: Any) -> str:
    """'mmdet.FPN' -> 'FPN' (other scopes, e.g. 'mmpretrain.ConvNeXt', are kept)."""
    name = type_ if isinstance(type_, str) else getattr(type_, '__name__', repr(type_))
    return name[len('mmdet.'):] if name.startswith('mmdet.') else name


def _read_config(config: str):
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


def _base_reference(config: str, out_file: Optional[str]) -> str:
    """``_base_`` of the new config: as given, except that a relative path is re-expressed from
    the folder of ``out_file`` (mmengine resolves ``_base_`` from the naming file's folder)."""
    if '::' in config or osp.isabs(config) or out_file is None:
        return config
    out_dir = osp.dirname(osp.abspath(out_file))
    if osp.abspath(osp.join(out_dir, config)) == osp.abspath(config):
        return config
    return osp.relpath(osp.abspath(config), out_dir)


def _hiera_channels(arch: str) -> list:
    settings = ARCH_SETTINGS[arch]
    return [int(settings['embed_dim'] * 2 ** i) for i in range(len(settings['depths']))]


def _no_decay_params(arch: str, out_indices) -> list:
    """(module name, parameter names) of HieraBackbone's position embeddings and LayerNorms, named
    as in a detector (``backbone.``): the parameters Hiera's recipe trains without weight decay."""
    settings = ARCH_SETTINGS[arch]
    pos = ['pos_embed'] + (['pos_embed_window'] if settings.get('pos_embed') == 'abs_win' else [])
    groups = [('backbone.trunk', pos)]
    groups += [(f'backbone.out_norms.stage{i + 1}', ['weight', 'bias']) for i in out_indices]
    for g in range(sum(settings['depths'])):
        groups += [(f'backbone.trunk.blocks.{g}.norm{j}', ['weight', 'bias']) for j in (1, 2)]
    return groups


def _winning_key(name: str, custom_keys: dict) -> Optional[str]:
    """The custom key mmengine applies to a parameter: the longest one contained in its name
    (ties: alphabetical), as ``DefaultOptimWrapperConstructor.add_params``."""
    for key in sorted(sorted(custom_keys), key=len, reverse=True):
        if key in name:
            return key
    return None


def _effective(name: str, is_norm: bool, custom_keys: dict) -> tuple:
    """(lr_mult, decay_mult, other settings) mmengine gives a parameter (norm_decay_mult=0)."""
    key = _winning_key(name, custom_keys)
    if key is None:
        return 1.0, 0.0 if is_norm else 1.0, ()
    settings = dict(custom_keys[key])
    lr_mult, decay_mult = settings.pop('lr_mult', 1.0), settings.pop('decay_mult', 1.0)
    return float(lr_mult), float(decay_mult), tuple(sorted(settings.items()))


def _merge_custom_keys(inherited: dict, arch: str, out_indices) -> tuple:
    """custom_keys = inherited + 'pos_embed' no decay + keys that give Hiera's position
    embeddings and LayerNorms no weight decay while keeping what the inherited keys gave them
    (lr_mult ...). Returns (keys, names of the added combined keys).

    Added keys are, from general to specific, 'backbone.trunk.pos_embed' /
    'backbone.out_norms' / 'backbone.trunk.blocks.{g}.norm', the norm module's name, the
    parameter's name: each matches only such no-decay parameters of the backbone."""
    keys = {k: dict(v) for k, v in inherited.items()}
    keys['pos_embed'] = {**keys.get('pos_embed', {}), 'decay_mult': 0.0}
    wanted = []  # (parameter name, is_norm, candidate keys, settings, effective settings)
    for module, params in _no_decay_params(arch, out_indices):
        is_norm = not module.endswith('.trunk')
        if not is_norm:
            candidates = ('backbone.trunk.pos_embed',)
        elif '.out_norms.' in module:
            candidates = ('backbone.out_norms', module)
        else:
            candidates = (module[:-1], module)  # 'backbone.trunk.blocks.3.norm', '...norm1'
        for param in params:
            name = f'{module}.{param}'
            winner = _winning_key(name, inherited)
            want = {**(inherited[winner] if winner else {}), 'decay_mult': 0.0}
            want_eff = (float(want.get('lr_mult', 1.0)), 0.0, tuple(sorted(
                (k, v) for k, v in want.items() if k not in ('lr_mult', 'decay_mult'))))
            wanted.append((name, is_norm, candidates + (name,), want, want_eff))
    added = []
    for name, is_norm, candidates, want, want_eff in wanted:
        for candidate in candidates:
            if _effective(name, is_norm, keys) == want_eff:
                break
            # try the key; keep it only if it fixes this parameter and breaks none it matches
            before = keys.get(candidate)
            keys[candidate] = dict(want)
            touched = [w for w in wanted if candidate in w[0]]
            if all(_effective(n, norm, keys) == eff for n, norm, _, _, eff in touched):
                added.append(candidate)
            elif before is None:
                del keys[candidate]
            else:
                keys[candidate] = before
    wrong = [name for name, is_norm, _, _, want_eff in wanted
             if _effective(name, is_norm, keys) != want_eff]
    if wrong:  # only with inherited keys that single out Hiera's own parameters
        raise ValueError(f'could not give {wrong[:3]} no weight decay and their inherited '
                         f'settings with custom keys {sorted(keys)}; edit paramwise_cfg by hand')
    return keys, added


def _compact_keys(custom_keys: dict, arch: str) -> _Braces:
    """custom_keys to write: the per-block norm keys, when they cover all blocks alike, as one
    dict comprehension (mmengine's config files are Python) instead of one line per block."""
    num_blocks = sum(ARCH_SETTINGS[arch]['depths'])
    block_keys = [f'backbone.trunk.blocks.{g}.norm' for g in range(num_blocks)]
    settings = [custom_keys.get(k) for k in block_keys]
    if any(s is None or s != settings[0] for s in settings):
        return _Braces(custom_keys)
    out = _Braces((k, v) for k, v in custom_keys.items() if k not in block_keys)
    out.extra = (f"# norm1 and norm2 of each of the {num_blocks} blocks of Hiera-{arch}",
                 "**{f'backbone.trunk.blocks.{i}.norm': " + _fmt(settings[0], 0, 0, 10 ** 6),
                 f'   for i in range({num_blocks})}},')
    return out


# ----------------------------------------------------------------------------------------------
def _consumer(model: dict, config: str) -> dict:
    """Who reads the backbone's features, and how: a dict with where (key path), type,
    in_channels, mode ('levels' / 'all' / 'last'), start_level, end_level."""
    neck = model.get('neck')
    if neck is not None:
        is_list = isinstance(neck, (list, tuple))
        first = dict(neck[0] if is_list else neck)
        ntype = _short_type(first.get('type'))
        if ntype in LEVEL_NECKS or ntype in ALL_LEVEL_NECKS:
            in_channels = first.get('in_channels')
            if not isinstance(in_channels, (list, tuple)) or not in_channels:
                raise ValueError(f'neck {ntype} of {config}: in_channels {in_channels!r} is not '
                                 'a list of channels; cannot adapt it, edit the config by hand')
            mode = 'levels' if ntype in LEVEL_NECKS else 'all'
            return dict(where='neck', type=ntype, cfg=first, is_list=is_list,
                        in_channels=list(in_channels), mode=mode,
                        start_level=first.get('start_level', LEVEL_NECKS.get(ntype, 0)),
                        end_level=first.get('end_level', -1))
        if ntype in LAST_LEVEL_NECKS:
            if not isinstance(first.get('in_channels'), int):
                raise ValueError(f'neck {ntype} of {config}: expected one int in_channels, got '
                                 f"{first.get('in_channels')!r}; edit the config by hand")
            return dict(where='neck', type=ntype, cfg=first, is_list=is_list,
                        in_channels=[first['in_channels']], mode='last')
        known = sorted(LEVEL_NECKS) + sorted(ALL_LEVEL_NECKS) + sorted(LAST_LEVEL_NECKS)
        why = NECK_REASONS.get(ntype, 'its inputs are not known to map onto backbone stages')
        raise ValueError(
            f'neck {ntype} of {config}: cannot adapt it to Hiera automatically ({why}); '
            f'swap_backbone adapts the inputs of {", ".join(known)} and panoptic_head. '
            'Edit the config by hand.')
    for head in NECKLESS_HEADS:
        head_cfg = model.get(head)
        if isinstance(head_cfg, dict) and isinstance(head_cfg.get('in_channels'), (list, tuple)):
            return dict(where=head, type=_short_type(head_cfg.get('type')), cfg=dict(head_cfg),
                        is_list=False, in_channels=list(head_cfg['in_channels']), mode='all')
    heads = [k for k in model if k.endswith('_head') and isinstance(model[k], dict)]
    raise ValueError(
        f'{config} has no neck (nor a panoptic_head with an in_channels list): its heads '
        f"({', '.join(heads) or 'none'}) read the backbone's features directly (e.g. a C4 RoI "
        'head with a ResNet stage of its own); cannot adapt them to Hiera automatically, edit '
        'the config by hand.')


def _backbone_stages(backbone: dict, config: str) -> tuple:
    """The original backbone's out_indices as Hiera stages (0..3 = strides 4..32)."""
    btype = _short_type(backbone.get('type'))
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


# ----------------------------------------------------------------------------------------------
def plan_swap(config: str, arch: str, checkpoint: Optional[str] = None,
              drop_path_rate: Optional[float] = None, lr: Optional[float] = None,
              out_file: Optional[str] = None) -> SwapPlan:
    """Decide everything and write the new config's text; see the module docstring."""
    if arch not in ARCH_SETTINGS:
        raise ValueError(f"unknown Hiera arch '{arch}'; choose one of {sorted(ARCH_SETTINGS)}")
    size = arch.split('_', 1)[1] if arch.startswith(('sam2', 'abswin')) else arch
    if checkpoint is None:
        if arch.startswith('abswin'):
            raise ValueError(
                f"arch '{arch}' is timm's hiera_{size}_abswin_256: there is no default checkpoint "
                "for it; pass --checkpoint with timm's file (e.g. the model.safetensors of "
                f'timm/hiera_{size}_abswin_256.<tag>)')
        if arch not in HUB_CHECKPOINTS:
            raise ValueError(
                f"arch '{arch}' is a SAM2 trunk: there is no Hiera hub checkpoint for it; pass "
                f'--checkpoint with the SAM2 file (e.g. checkpoints/sam2.1_hiera_{size}.pt)')
        checkpoint = HUB_CHECKPOINTS[arch]
    if drop_path_rate is None:
        drop_path_rate = DEFAULT_DROP_PATH[size]

    cfg = _read_config(config)
    plan = SwapPlan(base=_base_reference(config, out_file), arch=arch)
    note = plan.decisions.append
    model = _plain(cfg.get('model')) if isinstance(cfg.get('model'), dict) else None
    if not model or not isinstance(model.get('backbone'), dict):
        raise ValueError(f'config {config} has no model.backbone to replace')

    # ---- stages and channels -------------------------------------------------------------------
    consumer = _consumer(model, config)
    old_backbone = model['backbone']
    old_type = _short_type(old_backbone.get('type'))
    old_out = _backbone_stages(old_backbone, config)
    n = len(consumer['in_channels'])
    if n > len(old_out):
        raise ValueError(
            f"{consumer['where']} {consumer['type']} of {config} takes {n} inputs but backbone "
            f'{old_type} emits only out_indices {old_out}; edit the config by hand.')
    stages = old_out[-n:]
    neck_update = {}
    if consumer['mode'] == 'levels':
        start, end = consumer['start_level'], consumer['end_level']
        stop = n if end in (-1, n - 1) else end + 1
        if not 0 <= start < stop <= n:
            raise ValueError(f"neck {consumer['type']} of {config}: start_level {start} / "
                             f'end_level {end} do not fit its {n} inputs; edit by hand.')
        used = stages[start:stop]
        if start != 0:
            neck_update['start_level'] = 0
        if end != -1:
            neck_update['end_level'] = -1
    elif consumer['mode'] == 'last':
        used = stages[-1:]
    else:
        used = stages
    channels = _hiera_channels(arch)
    new_in = [channels[i] for i in used]
    neck_update = {'in_channels': new_in[0] if consumer['mode'] == 'last' else new_in,
                   **neck_update}
    old_in = consumer['in_channels'][0] if consumer['mode'] == 'last' else consumer['in_channels']

    note(f"backbone: {old_type} (out_indices {old_out}) -> HieraBackbone arch '{arch}', "
         f'out_indices {tuple(used)}, drop_path_rate {drop_path_rate}, weights {checkpoint}.')
    if tuple(used) != tuple(stages):
        note(f"{consumer['where']} {consumer['type']}: read stages {tuple(stages)} from "
             f"start_level {consumer['start_level']}; Hiera emits only the used stages "
             f'{tuple(used)} and the neck gets start_level=0 (the same network; an unread '
             'Hiera stage would leave its output norm without gradient, which DDP rejects).')
    note(f"{consumer['where']} {consumer['type']}: in_channels {old_in} -> "
         f"{neck_update['in_channels']} (Hiera-{arch} widths of stages {tuple(used)}).")

    # ---- data preprocessor ---------------------------------------------------------------------
    pre = model.get('data_preprocessor')
    pre_update = {}
    if not isinstance(pre, dict):
        pre, pre_update = {}, {'type': 'DetDataPreprocessor'}
    if [float(v) for v in pre.get('mean') or []] != list(IMAGENET_MEAN):
        pre_update['mean'] = list(IMAGENET_MEAN)
    if [float(v) for v in pre.get('std') or []] != list(IMAGENET_STD):
        pre_update['std'] = list(IMAGENET_STD)
    if pre.get('bgr_to_rgb') is not True:
        pre_update['bgr_to_rgb'] = True
    pad = int(pre.get('pad_size_divisor', 1) or 1)
    if pad % HIERA_SIZE_DIVISOR:
        pre_update['pad_size_divisor'] = math.lcm(pad, HIERA_SIZE_DIVISOR)
    if {'mean', 'std', 'bgr_to_rgb'} & set(pre_update):
        note(f"data_preprocessor: {'BGR' if not pre.get('bgr_to_rgb') else 'RGB'} mean "
             f"{pre.get('mean')} std {pre.get('std')} -> RGB, ImageNet mean/std (Hiera's "
             'pretraining normalisation); other fields inherited.')
    else:
        note("data_preprocessor: already Hiera's normalisation (RGB, ImageNet mean/std).")
    if 'pad_size_divisor' in pre_update:
        note(f"data_preprocessor: pad_size_divisor {pad} -> {pre_update['pad_size_divisor']} "
             f'(Hiera pads inputs to multiples of {HIERA_SIZE_DIVISOR} anyway; padding the batch '
             'makes that a no-op and keeps padding masks aligned with the features).')

    # ---- optimizer -----------------------------------------------------------------------------
    ow = _plain(cfg.get('optim_wrapper')) if isinstance(cfg.get('optim_wrapper'), dict) else None
    ow_update = {}
    if ow is None:
        ow, ow_update = {}, {'type': 'OptimWrapper'}
        note('optim_wrapper: the base has none; an OptimWrapper is written.')
    opt = ow.get('optimizer') or {}
    opt_type = _short_type(opt.get('type', 'none'))
    keep_optimizer = opt_type == 'AdamW'
    if keep_optimizer:
        if lr is not None:
            ow_update['optimizer'] = {'lr': lr}
        note(f"optimizer: the base's AdamW is kept (lr {opt.get('lr')}, weight_decay "
             f"{opt.get('weight_decay')})" + (f', lr -> {lr} (--lr).' if lr is not None
                                              else '.'))
    else:
        if lr is None:
            auto = cfg.get('auto_scale_lr') or {}
            batch = auto.get('base_batch_size') or REFERENCE_BATCH
            lr = float(f'{REFERENCE_LR * batch / REFERENCE_BATCH:.6g}')
            why = (f'1e-4 x auto_scale_lr.base_batch_size {batch} / 16'
                   if auto.get('base_batch_size') else '1e-4: the base has no auto_scale_lr, '
                   'batch 16 assumed')
        else:
            why = '--lr'
        ow_update['optimizer'] = {'_delete_': True, 'type': 'AdamW', 'lr': lr,
                                  'betas': (0.9, 0.999), 'weight_decay': 0.05}
        note(f"optimizer: {opt_type}(lr={opt.get('lr')}) -> AdamW(lr={lr}, betas=(0.9, 0.999), "
             f'weight_decay=0.05), lr = {why}. Wrapper type, clip_grad and schedule inherited.')

    paramwise = {k: v for k, v in (ow.get('paramwise_cfg') or {}).items()
                 if not k.startswith('_')}
    constructor = _short_type(ow.get('constructor', DEFAULT_CONSTRUCTOR))
    if constructor not in (DEFAULT_CONSTRUCTOR, 'HieraLayerDecayOptimizerConstructor'):
        # e.g. ConvNeXt's layer-wise lr decay: layer ids from the old backbone's module names
        gone = [k for k in LAYER_DECAY_KEYS if k in paramwise]
        for k in gone:
            paramwise.pop(k)
        ow_update['constructor'] = DEFAULT_CONSTRUCTOR
        note(f'optim_wrapper.constructor {constructor} -> {DEFAULT_CONSTRUCTOR} (it assigns '
             "lr by the old backbone's module names)" + (f", its {', '.join(gone)} dropped"
                                                      if gone else '')
             + "; Hiera's layer-wise lr decay is constructor='HieraLayerDecayOptimizerConstructor'"
             ' with paramwise_cfg.layer_decay_rate.')
    dropped = [k for k in ('bias_lr_mult', 'bias_decay_mult') if k in paramwise
               and not keep_optimizer]
    for k in dropped:
        paramwise.pop(k)
    inherited_keys = dict(paramwise.pop('custom_keys', None) or {})
    custom_keys, added = _merge_custom_keys(inherited_keys, arch, used)
    old_norm = paramwise.get('norm_decay_mult')
    paramwise['norm_decay_mult'] = 0.0
    ow_update['paramwise_cfg'] = {'_delete_': True, **paramwise,
                                  'custom_keys': _compact_keys(custom_keys, arch)}
    note("paramwise_cfg: merged with the base's ("
         + (f'custom_keys {sorted(inherited_keys)} kept; ' if inherited_keys
            else 'no custom_keys; ')
         + (f"SGD-only {', '.join(dropped)} dropped; " if dropped else '')
         + (f'norm_decay_mult {old_norm} -> 0; ' if old_norm not in (None, 0, 0.0) else '')
         + "no weight decay on norms (norm_decay_mult=0.) and 'pos_embed')"
         + (f"; {len(added)} key(s) like {added[0]!r} give Hiera's position embeddings and "
            f'LayerNorms no decay and keep what the inherited keys gave them (mmengine applies '
            'only the longest matching key).' if added else '.'))
    note(LR_RULE + '.')

    # ---- other top-level keys ----------------------------------------------------------------
    imports = cfg.get('custom_imports') or {}
    import_list = [m for m in (imports.get('imports') or [])
                   if m not in ('hiera_mm', 'hiera_mm.mmdet')] + ['hiera_mm.mmdet']
    base_hooks = [dict(h) for h in (cfg.get('custom_hooks') or [])]
    custom_hooks = base_hooks + [dict(type=t) for t in RUN_HOOKS
                                 if not any(h.get('type') == t for h in base_hooks)]
    note('custom_hooks: ' + ', '.join(RUN_HOOKS) + ' added'
         + (f" after the base's {[h.get('type') for h in base_hooks]}" if base_hooks else '')
         + ' (stop at a non-finite loss; read back the run\'s own checkpoints on torch >= 2.6).')
    ckpt_hook = (cfg.get('default_hooks') or {}).get('checkpoint', dict(type='CheckpointHook'))
    atomic_ckpt = isinstance(ckpt_hook, dict) and ckpt_hook.get('type') in (
        'CheckpointHook', 'mmengine.CheckpointHook')
    if atomic_ckpt:
        note('default_hooks.checkpoint: CheckpointHook -> AtomicCheckpointHook (same options; '
             'crash-safe writes).')
    reset_load_from = cfg.get('load_from') is not None
    if reset_load_from:
        note(f"load_from {cfg.get('load_from')!r} -> None (a whole detector with the old "
             'backbone).')

    # ---- text ----------------------------------------------------------------------------------
    backbone = {'_delete_': True, 'type': 'HieraBackbone', 'arch': arch,
                'out_indices': tuple(used), 'out_norm': True, 'frozen_stages': -1,
                'drop_path_rate': drop_path_rate, 'with_cp': False, 'attention': 'exact',
                'init_cfg': {'type': 'Pretrained', 'checkpoint': _Code('pretrained')}}
    lines = ['# Generated by tools/swap_backbone.py from', f'#   {config}',
             f"# with a Hiera backbone (arch {arch!r}). It inherits that config and states only "
             'what differs.', '# What changed, and why:']
    for decision in plan.decisions:
        wrapped = textwrap.wrap(decision, 94, break_on_hyphens=False, break_long_words=False)
        lines += ['#   - ' + wrapped[0]] + ['#     ' + w for w in wrapped[1:]]
    lines += [f'_base_ = {plan.base!r}', '',
              f"custom_imports = dict(imports={import_list!r}, allow_failed_imports=False)",
              f'custom_hooks = {_fmt(custom_hooks, 0, 15)}']
    if atomic_ckpt:
        lines += ["default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))"]
    lines += ['',
              f'pretrained = {checkpoint!r}', '']
    if reset_load_from:
        lines += ['load_from = None  # the base loads a detector with its old backbone', '']
    model_lines = ['model = dict(']
    if pre_update:
        if {'mean', 'std', 'bgr_to_rgb'} & set(pre_update):
            model_lines.append('    # Hiera was pretrained on RGB images with ImageNet mean/std; '
                               'the pipeline loads BGR.')
        if 'pad_size_divisor' in pre_update:
            model_lines.append(f'    # pad_size_divisor {pad} -> {pre_update["pad_size_divisor"]}'
                               f': Hiera pads to {HIERA_SIZE_DIVISOR}-pixel mask units anyway.')
        model_lines.append(f'    data_preprocessor={_fmt(pre_update, 4, 4 + 18)},')
    model_lines.append(f'    # stages {tuple(used)}: the ones the {consumer["where"]} reads')
    model_lines.append(f'    backbone={_fmt(backbone, 4, 4 + 9)},')
    if consumer['where'] == 'neck' and consumer['is_list']:
        necks = [dict(n) for n in model['neck']]
        necks[0].update(neck_update)
        model_lines.append('    # the whole neck list (a list in a config replaces the inherited '
                           'one);')
        model_lines.append("    # only the first neck's inputs change")
        model_lines.append(f'    neck={_fmt(necks, 4, 4 + 5)})')
    else:
        key = consumer['where']
        model_lines.append(f'    {key}={_fmt(neck_update, 4, 4 + len(key) + 1)})')
    lines += model_lines + ['']
    if 'optimizer' not in ow_update:
        lines.append("# The base's AdamW is kept.")
    elif keep_optimizer:
        lines.append("# The base's AdamW with another lr (--lr).")
    else:
        lines.append('# AdamW instead of ' + opt_type + ', lr by the rule in the header.')
    lines.append('# paramwise_cfg in full (_delete_=True): the inherited settings, merged with '
                 'no weight')
    lines.append('# decay on norm layers and position embeddings.')
    lines.append(f'optim_wrapper = {_fmt(ow_update, 0, 16)}')
    plan.text = '\n'.join(lines) + '\n'
    return plan


def swap_backbone(config: str, arch: str, checkpoint: Optional[str] = None,
                  drop_path_rate: Optional[float] = None, lr: Optional[float] = None,
                  out_file: Optional[str] = None) -> str:
    """Text of a config that inherits ``config`` and puts a Hiera backbone of ``arch`` in it.

    Args:
        config: path of an MMDetection config or ``'mmdet::<folder>/<name>.py'``.
        arch: Hiera arch ('tiny', 'small', 'base', 'base_plus', 'large', 'huge', 'sam2_*').
        checkpoint: backbone weights; default the arch's ``hf://facebook/hiera-*-224-hf``
            (required for SAM2 trunks).
        drop_path_rate: stochastic depth; default per size (see ``DEFAULT_DROP_PATH``).
        lr: learning rate; default by the rule in the module docstring (``LR_RULE``).
        out_file: where the text will be written; a relative ``config`` path is then written as
            ``_base_`` relative to that file's folder.

    Raises:
        ValueError: the config cannot be adapted automatically (the message says why).
    """
    return plan_swap(config, arch, checkpoint, drop_path_rate, lr, out_file).text
