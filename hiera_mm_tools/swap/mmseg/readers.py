"""Who reads a segmentor's backbone: the checks that refuse what cannot be mapped (other
segmentors, plain ViTs, dilated ResNets), the neck (Semantic FPN's ``FPN``) or, without one, the
decode and auxiliary heads reading backbone outputs by ``in_index``; and the heads' new
``in_channels`` / ``in_index``."""
from __future__ import annotations

import importlib.util
import math
import os.path as osp
from typing import Optional

from hiera_mm.archs import stage_widths

from ..analyse import Consumer, short_type
from ..render import Change

SCOPE = 'mmseg'
SEGMENTORS = ('EncoderDecoder', 'CascadeEncoderDecoder')
HEAD_KEYS = ('decode_head', 'auxiliary_head')
# ResNets: strides / dilations other than the defaults make a dilated ("-d8", "-d16") network.
RESNETS = ('ResNet', 'ResNetV1c', 'ResNetV1d', 'ResNeXt', 'ResNeSt')
RESNET_STRIDES = (1, 2, 2, 2)
# Plain ViTs: every block at one stride (16), so their out_indices are blocks, not stages.
PLAIN_VITS = ('VisionTransformer', 'BEiT', 'MAE', 'mmpretrain.VisionTransformer')
PLAIN_VIT_NECKS = ('MLANeck', 'MultiLevelNeck', 'Feature2Pyramid')
# Necks taking a list of in_channels, one per backbone output, reading start_level..end_level.
LEVEL_NECKS = {'FPN': 0}
NECK_REASONS = {
    'JPU': "FastFCN's joint pyramid upsampling is built around a ResNet's last three stages",
    'ICNeck': "ICNet's cascade fuses branches of its own backbone at several input resolutions",
}
# Heads reading the backbone's outputs by in_index (an int: one map, in_channels an int; a
# list: several maps, in_channels a list) and through nothing else ...
IN_INDEX_HEADS = ('UPerHead', 'FCNHead', 'SegformerHead', 'LightHamHead', 'PSPHead', 'ASPPHead',
                  'NLHead', 'GCHead', 'DAHead', 'EMAHead', 'CCHead', 'APCHead', 'DMHead',
                  'DNLHead', 'PSAHead', 'ISAHead', 'SepFCNHead', 'OCRHead', 'ANNHead')
# ... and heads reading all of them (in_channels a list, one per output).
ALL_INPUT_HEADS = ('Mask2FormerHead', 'MaskFormerHead')
HEAD_REASONS = {
    'DepthwiseSeparableASPPHead': 'it also reads backbone output 0 as its low-level feature '
                                  '(c1_in_channels) besides in_index',
    'IterativeDecodeHead': "K-Net's kernel_generate_head (nested) reads the backbone",
    'DPTHead': "it reassembles a plain ViT's same-stride block outputs",
    'SETRUPHead': "it upsamples a plain ViT's stride-16 block output",
    'SETRMLAHead': "it reads MLANeck's maps of a plain ViT's blocks",
}
MULTISCALE_EXAMPLES = ('mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py (UperNet), '
                       'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py (Semantic FPN) or '
                       'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py '
                       '(SegFormer)')


def _type(cfg: dict) -> str:
    return short_type(cfg.get('type'), SCOPE)


def _heads(model: dict) -> list:
    """(key, position in a list of heads or None, head) of the decode and auxiliary heads."""
    heads = []
    for key in HEAD_KEYS:
        value = model.get(key)
        if isinstance(value, dict):
            heads.append((key, None, value))
        elif isinstance(value, (list, tuple)):
            heads += [(key, i, dict(h)) for i, h in enumerate(value)]
    return heads


def _head_name(key: str, i: Optional[int], head: dict) -> str:
    return f"{key}{'' if i is None else f'[{i}]'} {_type(head)}"


def _mmseg_config_exists(rel: str) -> bool:
    spec = importlib.util.find_spec('mmseg')
    roots = list(spec.submodule_search_locations or []) if spec else []
    return any(osp.isfile(osp.join(root, '.mim', 'configs', rel)) for root in roots)


def multiscale_alternative(config: str) -> str:
    """A config to swap instead of a dilated-ResNet one: mmseg's UperNet of the same depth,
    schedule and data where it ships one (pspnet_r50-d8_4xb4-80k_ade20k-512x512.py ->
    upernet/upernet_r50_4xb4-80k_ade20k-512x512.py), else examples."""
    parts = osp.basename(config.split('::')[-1]).split('_')
    if len(parts) > 2:
        depth = parts[1].split('-d')[0]  # 'r50-d8' -> 'r50'
        rel = f"upernet/upernet_{depth}_{'_'.join(parts[2:])}"
        if _mmseg_config_exists(rel):
            return f'mmseg::{rel} (the UperNet of the same depth, schedule and data)'
    return MULTISCALE_EXAMPLES


def check_segmentor(model: dict, config: str) -> None:
    """Refuse segmentors other than (Cascade)EncoderDecoder: their backbone feeds other parts
    (SAN's CLIP, VPD's diffusion model) whose inputs are not known here."""
    stype = _type(model)
    if stype not in SEGMENTORS:
        raise ValueError(
            f'segmentor {stype} of {config}: swap_backbone adapts {", ".join(SEGMENTORS)} '
            '(backbone -> optional neck -> decode / auxiliary heads); edit the config by hand.')


def check_plain_vit(model: dict, config: str) -> None:
    """Refuse plain ViTs (SETR, DPT, ViT / BEiT / MAE UperNet): their decoders read several
    same-stride maps (blocks, all at stride 16), which Hiera's stages are not."""
    backbone, neck = model['backbone'], model.get('neck')
    neck_type = _type(neck) if isinstance(neck, dict) else None
    if _type(backbone) not in PLAIN_VITS and neck_type not in PLAIN_VIT_NECKS:
        return
    out = backbone.get('out_indices', -1)
    out = tuple(out) if isinstance(out, (list, tuple)) else (out,)
    reader = f'neck {neck_type}' if neck_type else ', '.join(
        _head_name(*h) for h in _heads(model) if h[0] == 'decode_head')
    raise ValueError(
        f'backbone {_type(backbone)} of {config} is a plain ViT: its out_indices {out} are '
        f'blocks that all give stride-16 maps of one width, and {reader} reads those '
        "same-stride maps (resampling them itself). Hiera's stages are at strides 4, 8, 16, 32 "
        'with growing widths, so this decoder would not get what it was built for. '
        'Suggestion: swap into a config whose decoder reads a hierarchical backbone, e.g. '
        f'{MULTISCALE_EXAMPLES}.')


def check_dilated_resnet(model: dict, config: str) -> None:
    """Refuse dilated ResNets (strides (1, 2, 1, 1), dilations (1, 1, 2, 4): the last stages
    stay at stride 8): their decoders (FCN, PSPNet, DeepLabV3(+), ...) read one stride-8 map,
    which Hiera has no dilated form to give."""
    backbone = model['backbone']
    btype = _type(backbone)
    if btype not in RESNETS:
        return
    strides = tuple(backbone.get('strides', RESNET_STRIDES))
    dilations = tuple(backbone.get('dilations', (1, 1, 1, 1)))
    if strides == RESNET_STRIDES[:len(strides)] and set(dilations) == {1}:
        return
    stride = 4 * math.prod(strides[1:])
    last = f'its last stage is at stride {stride}, not 32' if stride != 32 else (
        'its last stages are dilated')
    reads = '; '.join(f"{_head_name(*h)} reads in_index {h[2].get('in_index', -1)} "
                      f"({h[2].get('in_channels')} channels)" for h in _heads(model))
    raise ValueError(
        f'backbone {btype} of {config} is a dilated ResNet (strides {strides}, dilations '
        f'{dilations}: {last}), built for a decoder that reads a dilated high-resolution map '
        f'({reads}). Hiera has no dilated form: its stages are at strides 4, 8, 16, 32 without '
        "dilation, so this decoder would not get the map it was built for. Suggestion: swap "
        'into a config whose decoder reads the four stages instead, e.g. '
        f'{multiscale_alternative(config)}.')


def neck_reader(neck: dict, config: str) -> Consumer:
    """The neck as the backbone's reader: Semantic FPN's (and Twins', PoolFormer's) ``FPN``."""
    ntype = _type(neck)
    in_channels = neck.get('in_channels')
    if ntype not in LEVEL_NECKS:
        why = NECK_REASONS.get(ntype, 'its inputs are not known to map onto backbone stages')
        raise ValueError(
            f'neck {ntype} of {config}: cannot adapt it to Hiera automatically ({why}); '
            f'swap_backbone adapts the inputs of {", ".join(LEVEL_NECKS)}, or of the heads '
            'where there is no neck. Edit the config by hand.')
    if not isinstance(in_channels, (list, tuple)) or not in_channels:
        raise ValueError(f'neck {ntype} of {config}: in_channels {in_channels!r} is not a list '
                         'of channels; cannot adapt it, edit the config by hand')
    return Consumer('neck', ntype, list(in_channels), 'levels',
                    start_level=neck.get('start_level', LEVEL_NECKS[ntype]),
                    end_level=neck.get('end_level', -1))


def head_reads(key: str, i: Optional[int], head: dict, outputs, config: str) -> tuple:
    """The backbone outputs (positions in the probed ``outputs``) a neckless head reads, in its
    order; its in_channels must be their widths."""
    positions = _head_positions(key, i, head, len(outputs.stages), config)
    outputs.check_widths(positions, head.get('in_channels'), _head_name(key, i, head), config)
    return positions


def _head_positions(key: str, i: Optional[int], head: dict, n_out: int, config: str) -> tuple:
    htype, name = _type(head), _head_name(key, i, head)
    in_channels = head.get('in_channels')
    if htype in ALL_INPUT_HEADS:
        if not isinstance(in_channels, (list, tuple)) or not 0 < len(in_channels) <= n_out:
            raise ValueError(f'{name} of {config}: in_channels {in_channels!r} does not match '
                             f'the {n_out} backbone outputs; edit the config by hand')
        return tuple(range(n_out - len(in_channels), n_out))
    if htype not in IN_INDEX_HEADS:
        why = HEAD_REASONS.get(htype, 'which backbone maps it reads is not known')
        raise ValueError(
            f'{name} of {config} reads the backbone directly and cannot be adapted to Hiera '
            f'automatically ({why}); swap_backbone adapts {", ".join(IN_INDEX_HEADS)} (by '
            f'in_index) and {", ".join(ALL_INPUT_HEADS)}. Edit the config by hand.')
    in_index = head.get('in_index', -1)
    many = isinstance(in_index, (list, tuple))
    indices = list(in_index) if many else [in_index]
    channels = list(in_channels) if isinstance(in_channels, (list, tuple)) else [in_channels]
    if len(channels) != len(indices) or any(not -n_out <= int(j) < n_out for j in indices):
        raise ValueError(f'{name} of {config}: in_index {in_index!r} / in_channels '
                         f'{in_channels!r} do not fit the {n_out} backbone outputs; edit by hand')
    return tuple(int(j) % n_out for j in indices)


def _head_update(head: dict, old_stages: tuple, positions: tuple, new_stages: tuple,
                 arch: str) -> dict:
    """in_channels (and in_index, where the outputs it read moved) of one head."""
    stages = [old_stages[p] for p in positions]
    widths = [stage_widths(arch)[s] for s in stages]
    in_channels = head.get('in_channels')
    update = {'in_channels': widths if isinstance(in_channels, (list, tuple)) else widths[0]}
    if _type(head) in ALL_INPUT_HEADS:
        return update
    in_index = head.get('in_index', -1)
    many = isinstance(in_index, (list, tuple))
    n_new = len(new_stages)
    still = [new_stages[int(j) % n_new] if -n_new <= int(j) < n_new else None
             for j in (in_index if many else [in_index])]
    if still != stages:  # the same numbers would now point at other stages
        new = [new_stages.index(s) for s in stages]
        update['in_index'] = type(in_index)(new) if many else new[0]
    return update


def heads_change(model: dict, outputs, arch: str, config: str) -> tuple:
    """(stages Hiera emits, {head key: Change}) for heads reading the backbone directly: Hiera
    emits the union of the stages they read (an unread stage would leave its output norm
    without gradient, which DDP rejects); each head gets Hiera's widths of its stages as
    in_channels and, where that union renumbers the outputs, the new in_index (``outputs``:
    the probed ``BackboneOutputs`` of the old backbone)."""
    heads, old_stages = _heads(model), outputs.stages
    reads = [head_reads(key, i, head, outputs, config) for key, i, head in heads]
    new_stages = tuple(sorted({old_stages[p] for positions in reads for p in positions}))
    updates, notes = {}, {}
    for (key, i, head), positions in zip(heads, reads):
        update = _head_update(head, old_stages, positions, new_stages, arch)
        stages = tuple(old_stages[p] for p in positions)
        old = {k: head.get(k, -1 if k == 'in_index' else None) for k in update}
        if _same(old['in_channels'], update['in_channels']):
            del update['in_channels']
        parts = [f"in_channels {old['in_channels']} -> {update['in_channels']} (Hiera-{arch} "
                 'widths of those stages)' if 'in_channels' in update else
                 f"in_channels {old['in_channels']} kept (Hiera-{arch}'s widths of those stages)"]
        if 'in_index' in update:
            parts.append(f"in_index {old['in_index']} -> {update['in_index']} (Hiera emits only "
                         'the stages read, so their positions change)')
        notes.setdefault(key, []).append(
            f"{_head_name(key, i, head)}: reads stage(s) {stages}; {', '.join(parts)}.")
        updates.setdefault(key, {})[i] = update
    changes = {}
    for key, per_head in updates.items():
        if None in per_head:
            changes[key] = Change(per_head[None] or None, notes[key])
        elif not any(per_head.values()):
            changes[key] = Change(None, notes[key])
        else:  # a list of heads replaces the inherited one: write each in full
            whole = [dict(h, **per_head[i]) for i, h in enumerate(model[key])]
            changes[key] = Change(whole, notes[key],
                                  [f'the whole {key} list (a list in a config replaces the '
                                   'inherited one)'])
    return new_stages, changes


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b

