"""Put a Hiera backbone into an MMSegmentation config: writes a config that inherits the given one.

``swap_backbone(config, arch)`` / ``plan_swap`` as ``hiera_mm.mmdet.swap``'s, for segmentors
(``mmseg::`` configs, or any whose ``default_scope`` is 'mmseg'); ``tools/swap_backbone.py``
picks this planner by that. Each change is a small function giving the change and its reason;
the framework-neutral ones (backbone entry, normalisation, AdamW by ``LR_RULE``, paramwise_cfg,
imports, hooks, load_from, the text) come from ``hiera_mm.openmmlab.swap``. What is particular
to segmentation:

* The backbone's readers are a neck (Semantic FPN's ``FPN``: ``neck_change``) or, without a
  neck, the decode head(s) and auxiliary head(s), each reading backbone outputs by
  ``in_index`` (``head_reads``): Hiera emits the union of the stages they read, and each head
  gets Hiera's widths as ``in_channels`` and its ``in_index`` renumbered where an unread stage
  left the outputs (``heads_change``). Mask2Former / MaskFormer heads read all outputs.
* ``model.pretrained`` (mmseg hands it to the backbone, e.g. ``open-mmlab://resnet50_v1c``)
  becomes None (``pretrained_change``); the Hiera weights come from ``init_cfg``.
* ``data_preprocessor``: Hiera's normalisation, and test-time padding to 32-pixel mask units
  (``preprocessor_change``).
* ``custom_imports``: ``hiera_mm.mmseg`` (never ``hiera_mm.mmdet``); imports that only served
  the old backbone (ConvNeXt's ``mmpretrain.models``) go (``imports_change``).

Refused with the reason and a suggestion (``ValueError``): dilated ResNets whose decoder reads
one stride-8 map (FCN, PSPNet, DeepLabV3(+), ... on ``-d8`` backbones), plain ViTs whose decoder
reads several same-stride maps (SETR, DPT, ViT/BEiT/MAE UperNet), and necks / heads / segmentors
whose inputs are not known to map onto Hiera's stages. SyncBN in the heads stays as it is
(mmengine turns it into BN in single-process runs, ``hiera_mm.openmmlab.compat`` in
distributed runs without CUDA).
"""
from __future__ import annotations

import importlib.util
import math
import os.path as osp
from typing import Optional

from ..openmmlab.swap.analyse import (DEFAULT_STRIDES, FOUR_STAGE_BACKBONES, Consumer,
                                      backbone_stages, read_config, read_model,
                                      read_optim_wrapper, short_type, stages_read)
from ..openmmlab.swap.changes import (SwapPlan, backbone_change, checkpoint_hook_change,
                                      finish_plan, hooks_change, import_list, imports_entry,
                                      load_from_change, normalisation_change, reader_change)
from ..openmmlab.swap.hiera_backbone import (HIERA_SIZE_DIVISOR, stage_widths,
                                             weights_and_drop_path)
from ..openmmlab.swap.literals import Code
from ..openmmlab.swap.optimizer import optim_wrapper_change
from ..openmmlab.swap.render import Change

SCOPE = 'mmseg'
IMPORT = 'hiera_mm.mmseg'  # registers HieraBackbone and the hooks into mmseg
SEGMENTORS = ('EncoderDecoder', 'CascadeEncoderDecoder')
HEAD_KEYS = ('decode_head', 'auxiliary_head')
# mmseg's backbones whose out_indices 0..3 are stages at strides 4..32, and their default
# out_indices / strides (with mmdet's names where mmseg has the same class).
SEG_BACKBONES = {**{k: v for k, v in FOUR_STAGE_BACKBONES.items()
                    if k in ('ResNet', 'ResNetV1d', 'ResNeXt', 'ResNeSt', 'SwinTransformer',
                             'HieraBackbone', 'mmpretrain.ConvNeXt', 'mmcls.ConvNeXt')},
                 'ResNetV1c': (0, 1, 2, 3), 'MixVisionTransformer': (0, 1, 2, 3),
                 'MSCAN': (0, 1, 2, 3), 'PCPVT': (0, 1, 2, 3), 'SVT': (0, 1, 2, 3)}
SEG_STRIDES = {**{k: v for k, v in DEFAULT_STRIDES.items() if k in SEG_BACKBONES},
               'ResNetV1c': (1, 2, 2, 2), 'MixVisionTransformer': (4, 2, 2, 2),
               'PCPVT': (4, 2, 2, 2), 'SVT': (4, 2, 2, 2)}
# ResNets: strides / dilations other than the defaults make a dilated ("-d8", "-d16") network.
RESNETS = ('ResNet', 'ResNetV1c', 'ResNetV1d', 'ResNeXt', 'ResNeSt')
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
    strides = tuple(backbone.get('strides', SEG_STRIDES.get(btype, (1, 2, 2, 2))))
    dilations = tuple(backbone.get('dilations', (1, 1, 1, 1)))
    if strides == SEG_STRIDES.get(btype, (1, 2, 2, 2))[:len(strides)] and set(dilations) == {1}:
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


def head_reads(key: str, i: Optional[int], head: dict, n_out: int, config: str) -> tuple:
    """The backbone outputs (positions 0..n_out-1) a neckless head reads, in its order."""
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


def heads_change(model: dict, old_stages: tuple, arch: str, config: str) -> tuple:
    """(stages Hiera emits, {head key: Change}) for heads reading the backbone directly: Hiera
    emits the union of the stages they read (an unread stage would leave its output norm
    without gradient, which DDP rejects); each head gets Hiera's widths of its stages as
    in_channels and, where that union renumbers the outputs, the new in_index."""
    heads = _heads(model)
    reads = [head_reads(key, i, head, len(old_stages), config) for key, i, head in heads]
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


def pretrained_change(model: dict) -> Change:
    """``model.pretrained = None``: EncoderDecoder hands it to the backbone as ``pretrained``
    (e.g. ``open-mmlab://resnet50_v1c``), which HieraBackbone neither takes nor needs."""
    if model.get('pretrained') is None:
        return Change(None)
    return Change(Code('None'),
                  [f"model.pretrained {model['pretrained']!r} -> None (the old backbone's "
                   "weights; Hiera's come from its init_cfg)."],
                  ["the old backbone's weights (mmseg passes them to the backbone)"])


def preprocessor_change(pre: Optional[dict]) -> Change:
    """Hiera's normalisation (``normalisation_change``), and test-time padding to Hiera's
    32-pixel mask units (``test_cfg.size_divisor``): Hiera pads every input itself and its maps
    cover the padded image; padded by the preprocessor, mmseg crops the padding off the logits
    instead of stretching them over the image. Training crops are padded to ``size`` already
    (a size that is no multiple of 32 is pointed out). Only what differs is stated."""
    if not isinstance(pre, dict):
        pre, update = {}, {'type': 'SegDataPreProcessor'}
    else:
        update = {}
    normalisation = normalisation_change(pre)
    update.update(normalisation.update)
    notes, comments = list(normalisation.notes), list(normalisation.comments)
    size, divisor = pre.get('size'), pre.get('size_divisor')
    if size is None and divisor and divisor % HIERA_SIZE_DIVISOR:
        update['size_divisor'] = math.lcm(divisor, HIERA_SIZE_DIVISOR)
        notes.append(f"data_preprocessor: size_divisor {divisor} -> {update['size_divisor']} "
                     f'(Hiera pads inputs to multiples of {HIERA_SIZE_DIVISOR}).')
    if size is not None and any(int(s) % HIERA_SIZE_DIVISOR for s in size):
        notes.append(f'data_preprocessor: training crops are padded to {tuple(size)}, not a '
                     f'multiple of {HIERA_SIZE_DIVISOR}: Hiera pads them further itself and the '
                     'logits are stretched over the crop (a crop of multiples of 32 avoids it).')
    test_cfg = pre.get('test_cfg') or {}
    if not test_cfg.get('size') and (test_cfg.get('size_divisor') or 1) % HIERA_SIZE_DIVISOR:
        old = test_cfg.get('size_divisor')
        update['test_cfg'] = dict(size_divisor=math.lcm(old or 1, HIERA_SIZE_DIVISOR))
        notes.append(f'data_preprocessor.test_cfg: size_divisor {old} -> '
                     f"{update['test_cfg']['size_divisor']} (Hiera pads inputs to "
                     f'{HIERA_SIZE_DIVISOR}-pixel mask units; padded here, mmseg crops the '
                     'padding off the logits instead of stretching them over the image).')
        comments.append(f'test_cfg: pad test images to {HIERA_SIZE_DIVISOR}-pixel mask units '
                        '(mmseg crops the padding off the logits).')
    return Change(update or None, notes, comments)


def _types(value) -> list:
    """The string ``type`` of every dict in a nested config value."""
    if isinstance(value, dict):
        own = [value['type']] if isinstance(value.get('type'), str) else []
        return own + [t for v in value.values() for t in _types(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _types(v)]
    return []


def imports_change(custom_imports: Optional[dict], model: dict, old_backbone: dict) -> tuple:
    """(``custom_imports`` entry, Change with the reason): ``hiera_mm.mmseg`` added; imports of
    the old backbone's package (``mmpretrain.models`` for ``mmpretrain.ConvNeXt``) dropped when
    nothing else in the model is of that package (``mmdet.models`` for Mask2Former stays)."""
    btype = str(old_backbone.get('type', ''))
    package = btype.split('.', 1)[0] if '.' in btype else None
    dropped = []
    rest = {k: v for k, v in model.items() if k != 'backbone'}
    if package not in (None, SCOPE) and not any(t.startswith(package + '.')
                                                for t in _types(rest)):
        dropped = [m for m in import_list(custom_imports)
                   if m == package or m.startswith(package + '.')]
    notes = [f'custom_imports: {IMPORT} added'
             + (f"; {', '.join(dropped)} dropped (it served the old backbone {btype} only)"
                if dropped else '') + '.']
    # mmseg before hiera_mm.mmseg: a process that has imported mmseg is a segmentation one, and
    # importing hiera_mm there never registers the detection side (see hiera_mm/__init__.py).
    return (imports_entry(custom_imports, IMPORT, dropped, before=('mmseg',)),
            Change(None, notes))


def plan_swap(config: str, arch: str, checkpoint: Optional[str] = None,
              drop_path_rate: Optional[float] = None, lr: Optional[float] = None,
              out_file: Optional[str] = None) -> SwapPlan:
    """Decide every change and write the new config's text; the arguments as
    ``swap_backbone``'s."""
    checkpoint, drop_path_rate = weights_and_drop_path(arch, checkpoint, drop_path_rate)
    cfg = read_config(config)
    model = read_model(cfg, config)
    check_segmentor(model, config)
    check_plain_vit(model, config)
    check_dilated_resnet(model, config)
    old_backbone = model['backbone']
    old_stages = backbone_stages(old_backbone, config, SEG_BACKBONES, SEG_STRIDES, SCOPE)

    if model.get('neck') is not None:
        reader = neck_reader(model['neck'], config)
        given, read = stages_read(reader, old_stages, _type(old_backbone), config)
        reader_changes = {'neck': reader_change(model, reader, given, read, arch)}
        reader_name = 'neck'
    else:
        read, reader_changes = heads_change(model, old_stages, arch, config)
        reader_name = 'heads'
    imports, imports_note = imports_change(cfg.get('custom_imports'), model, old_backbone)

    changes = {  # in the order of the decisions
        'backbone': backbone_change(arch, read, checkpoint, drop_path_rate, old_backbone,
                                    old_stages, reader_name, SCOPE,
                                    'read' if reader_name == 'heads' else 'reads'),
        'pretrained': pretrained_change(model),
        **reader_changes,
        'data_preprocessor': preprocessor_change(model.get('data_preprocessor')),
        'optim_wrapper': optim_wrapper_change(read_optim_wrapper(cfg),
                                              cfg.get('auto_scale_lr') or {}, lr, arch, read),
        'custom_imports': imports_note,
        'custom_hooks': hooks_change(cfg.get('custom_hooks')),
        'default_hooks': checkpoint_hook_change(cfg.get('default_hooks')),
        'load_from': load_from_change(cfg.get('load_from'), 'segmentor'),
    }
    return finish_plan(changes, ('data_preprocessor', 'pretrained', 'backbone', *reader_changes),
                       config=config, arch=arch, out_file=out_file, imports=imports,
                       checkpoint=checkpoint)


def swap_backbone(config: str, arch: str, checkpoint: Optional[str] = None,
                  drop_path_rate: Optional[float] = None, lr: Optional[float] = None,
                  out_file: Optional[str] = None) -> str:
    """Text of a config that inherits ``config`` and puts a Hiera backbone of ``arch`` in it.

    Args:
        config: path of an MMSegmentation config or ``'mmseg::<folder>/<name>.py'``.
        arch: Hiera arch ('tiny', 'small', 'base', 'base_plus', 'large', 'huge', 'sam2_*',
            'abswin_*').
        checkpoint: backbone weights; default the arch's ``hf://facebook/hiera-*-224-hf``
            (required for SAM2 trunks and abswin models).
        drop_path_rate: stochastic depth; default per size (see ``DEFAULT_DROP_PATH``).
        lr: learning rate; default by ``LR_RULE``.
        out_file: where the text will be written; a relative ``config`` path is then written as
            ``_base_`` relative to that file's folder.

    Raises:
        ValueError: the config cannot be adapted automatically (the message says why and what
            to swap instead).
    """
    return plan_swap(config, arch, checkpoint, drop_path_rate, lr, out_file).text


__all__ = ['swap_backbone', 'plan_swap', 'SwapPlan', 'IMPORT']
