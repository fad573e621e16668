"""The detector-specific changes: each a small function giving the change and its reason;
``plan_swap`` reads the base config and composes them into the new config."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from ...models.hiera import IMAGENET_MEAN, IMAGENET_STD
from .analyse import (Consumer, backbone_stages, find_consumer, read_config, read_model,
                      read_optim_wrapper, short_type, stages_read)
from .hiera_backbone import (HIERA_SIZE_DIVISOR, backbone_entry, stage_widths,
                             weights_and_drop_path)
from .literals import Code
from .optimizer import optim_wrapper_change
from .render import (Change, Fields, Statement, base_reference, config_text, header_lines)

GENERATOR = 'tools/swap_backbone.py'
IMPORT = 'hiera_mm.mmdet'  # registers HieraBackbone and the hooks into mmdet
# What every Hiera run declares, so that all launchers (ours, mmdet's tools, mim, Runner.from_cfg)
# register the same hooks (hiera_mm.openmmlab.hooks).
RUN_HOOKS = ('FiniteLossHook', 'TrustRunCheckpointsHook')
NORMALISATION_KEYS = {'mean', 'std', 'bgr_to_rgb'}


@dataclass
class SwapPlan:
    """What ``swap_backbone`` decided: the new config's text and one line per decision."""
    base: str
    text: str = ''
    decisions: list = field(default_factory=list)


def backbone_change(arch: str, stages: tuple, checkpoint: str, drop_path_rate: float,
                    old_backbone: dict, old_stages: tuple, reader: Consumer) -> Change:
    """HieraBackbone of ``arch`` emitting the stages ``reader`` reads, in place of the old one."""
    note = (f"backbone: {short_type(old_backbone.get('type'))} (out_indices {old_stages}) -> "
            f"HieraBackbone arch '{arch}', out_indices {tuple(stages)}, drop_path_rate "
            f'{drop_path_rate}, weights {checkpoint}.')
    return Change(backbone_entry(arch, stages, drop_path_rate), [note],
                  [f'stages {tuple(stages)}: the ones the {reader.where} reads'])


def reader_change(model: dict, reader: Consumer, given: tuple, read: tuple,
                  arch: str) -> Change:
    """The reader's in_channels become Hiera's widths of the stages it reads. An FPN-like neck
    reading levels start_level.. of its inputs gets just those with start_level=0: the same
    network (an FPN with start_level=1 over four inputs is the one with start_level=0 over the
    last three), and no Hiera stage goes unread (its output norm would get no gradient)."""
    levels, notes = {}, []
    if reader.mode == 'levels':
        if reader.start_level != 0:
            levels['start_level'] = 0
        if reader.end_level != -1:
            levels['end_level'] = -1
    widths = [stage_widths(arch)[i] for i in read]
    last = reader.mode == 'last'
    update = {'in_channels': widths[0] if last else widths, **levels}
    if tuple(read) != tuple(given):
        notes.append(f'{reader.where} {reader.type}: read stages {tuple(given)} from '
                     f'start_level {reader.start_level}; Hiera emits only the used stages '
                     f'{tuple(read)} and the neck gets start_level=0 (the same network; an '
                     'unread Hiera stage would leave its output norm without gradient, which '
                     'DDP rejects).')
    old_in = reader.in_channels[0] if last else reader.in_channels
    notes.append(f"{reader.where} {reader.type}: in_channels {old_in} -> "
                 f"{update['in_channels']} (Hiera-{arch} widths of stages {tuple(read)}).")
    if not (reader.where == 'neck' and reader.is_list):
        return Change(update, notes)
    necks = [dict(n) for n in model['neck']]
    necks[0].update(update)
    return Change(necks, notes, ['the whole neck list (a list in a config replaces the '
                                 'inherited one);', "only the first neck's inputs change"])


def preprocessor_change(pre: Optional[dict]) -> Change:
    """Hiera's normalisation (RGB from the BGR images the pipeline loads, ImageNet mean / std,
    also over Caffe-style bases), and a pad_size_divisor that is a multiple of 32: Hiera pads
    every input to whole mask units itself; padded batches make that a no-op and keep padding
    masks aligned with the features. Only what differs is stated, the rest inherited."""
    update = {}
    if not isinstance(pre, dict):
        pre, update = {}, {'type': 'DetDataPreprocessor'}
    if [float(v) for v in pre.get('mean') or []] != list(IMAGENET_MEAN):
        update['mean'] = list(IMAGENET_MEAN)
    if [float(v) for v in pre.get('std') or []] != list(IMAGENET_STD):
        update['std'] = list(IMAGENET_STD)
    if pre.get('bgr_to_rgb') is not True:
        update['bgr_to_rgb'] = True
    pad = int(pre.get('pad_size_divisor', 1) or 1)
    if pad % HIERA_SIZE_DIVISOR:
        update['pad_size_divisor'] = math.lcm(pad, HIERA_SIZE_DIVISOR)
    if NORMALISATION_KEYS & set(update):
        notes = [f"data_preprocessor: {'BGR' if not pre.get('bgr_to_rgb') else 'RGB'} mean "
                 f"{pre.get('mean')} std {pre.get('std')} -> RGB, ImageNet mean/std (Hiera's "
                 'pretraining normalisation); other fields inherited.']
        comments = ['Hiera was pretrained on RGB images with ImageNet mean/std; the pipeline '
                    'loads BGR.']
    else:
        notes = ["data_preprocessor: already Hiera's normalisation (RGB, ImageNet mean/std)."]
        comments = []
    if 'pad_size_divisor' in update:
        new_pad = update['pad_size_divisor']
        notes.append(f'data_preprocessor: pad_size_divisor {pad} -> {new_pad} (Hiera pads inputs '
                     f'to multiples of {HIERA_SIZE_DIVISOR} anyway; padding the batch makes that '
                     'a no-op and keeps padding masks aligned with the features).')
        comments.append(f'pad_size_divisor {pad} -> {new_pad}: Hiera pads to '
                        f'{HIERA_SIZE_DIVISOR}-pixel mask units anyway.')
    return Change(update or None, notes, comments)


def imports_entry(custom_imports: Optional[dict]) -> Code:
    """``custom_imports``: the base's imports and ``IMPORT``; failures are fatal."""
    imports = [m for m in ((custom_imports or {}).get('imports') or [])
               if m not in ('hiera_mm', IMPORT)] + [IMPORT]
    return Code(f'dict(imports={imports!r}, allow_failed_imports=False)')


def hooks_change(custom_hooks: Optional[list]) -> Change:
    """``custom_hooks`` in full: the base's, then the ``RUN_HOOKS`` it lacks."""
    base_hooks = [dict(h) for h in (custom_hooks or [])]
    hooks = base_hooks + [dict(type=t) for t in RUN_HOOKS
                          if not any(h.get('type') == t for h in base_hooks)]
    note = ('custom_hooks: ' + ', '.join(RUN_HOOKS) + ' added'
            + (f" after the base's {[h.get('type') for h in base_hooks]}" if base_hooks else '')
            + ' (stop at a non-finite loss; read back the run\'s own checkpoints on torch >= 2.6).')
    return Change(hooks, [note])


def checkpoint_hook_change(default_hooks: Optional[dict]) -> Change:
    """``AtomicCheckpointHook`` (same options) where the base uses mmengine's CheckpointHook."""
    hook = (default_hooks or {}).get('checkpoint', dict(type='CheckpointHook'))
    if not (isinstance(hook, dict)
            and hook.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook')):
        return Change(None)
    return Change(dict(checkpoint=dict(type='AtomicCheckpointHook')),
                  ['default_hooks.checkpoint: CheckpointHook -> AtomicCheckpointHook (same '
                   'options; crash-safe writes).'])


def load_from_change(load_from: Optional[str]) -> Change:
    """``load_from = None``: the base's is a whole detector with the old backbone (the Hiera
    weights come from ``pretrained``)."""
    if load_from is None:
        return Change(None)
    note = f'load_from {load_from!r} -> None (a whole detector with the old backbone).'
    return Change(Code('None'), [note], ['the base loads a detector with its old backbone'])


def _sections(changes: dict, reader_key: str, base: str, imports: Code,
              checkpoint: str) -> list:
    """The new config's statements, in sections (blank lines between them)."""
    model = Fields([Statement('data_preprocessor', changes['data_preprocessor'].update,
                              changes['data_preprocessor'].comments)]
                   if changes['data_preprocessor'].update else [])
    model += [Statement(key, changes[key].update, changes[key].comments)
              for key in ('backbone', reader_key)]
    run = [Statement('custom_imports', imports),
           Statement('custom_hooks', changes['custom_hooks'].update)]
    if changes['default_hooks'].update:
        run.append(Statement('default_hooks', changes['default_hooks'].update))
    sections = [[Statement('_base_', base)], run, [Statement('pretrained', checkpoint)]]
    load_from = changes['load_from']
    if load_from.update:
        sections.append([Statement('load_from', load_from.update,
                                   trailing=load_from.comments[0])])
    optim = changes['optim_wrapper']
    return sections + [[Statement('model', model)],
                       [Statement('optim_wrapper', optim.update, optim.comments)]]


def plan_swap(config: str, arch: str, checkpoint: Optional[str] = None,
              drop_path_rate: Optional[float] = None, lr: Optional[float] = None,
              out_file: Optional[str] = None) -> SwapPlan:
    """Decide every change and write the new config's text; the arguments as
    ``swap_backbone``'s."""
    checkpoint, drop_path_rate = weights_and_drop_path(arch, checkpoint, drop_path_rate)
    cfg = read_config(config)
    model = read_model(cfg, config)
    reader = find_consumer(model, config)
    old_stages = backbone_stages(model['backbone'], config)
    old_type = short_type(model['backbone'].get('type'))
    given, read = stages_read(reader, old_stages, old_type, config)

    changes = {  # in the order of the decisions
        'backbone': backbone_change(arch, read, checkpoint, drop_path_rate, model['backbone'],
                                    old_stages, reader),
        reader.where: reader_change(model, reader, given, read, arch),
        'data_preprocessor': preprocessor_change(model.get('data_preprocessor')),
        'optim_wrapper': optim_wrapper_change(read_optim_wrapper(cfg),
                                              cfg.get('auto_scale_lr') or {}, lr, arch, read),
        'custom_hooks': hooks_change(cfg.get('custom_hooks')),
        'default_hooks': checkpoint_hook_change(cfg.get('default_hooks')),
        'load_from': load_from_change(cfg.get('load_from')),
    }
    decisions = [note for change in changes.values() for note in change.notes]
    base = base_reference(config, out_file)
    sections = _sections(changes, reader.where, base, imports_entry(cfg.get('custom_imports')),
                         checkpoint)
    text = config_text(header_lines(GENERATOR, config, arch, decisions), sections)
    return SwapPlan(base=base, text=text, decisions=decisions)


def swap_backbone(config: str, arch: str, checkpoint: Optional[str] = None,
                  drop_path_rate: Optional[float] = None, lr: Optional[float] = None,
                  out_file: Optional[str] = None) -> str:
    """Text of a config that inherits ``config`` and puts a Hiera backbone of ``arch`` in it.

    Args:
        config: path of an MMDetection config or ``'mmdet::<folder>/<name>.py'``.
        arch: Hiera arch ('tiny', 'small', 'base', 'base_plus', 'large', 'huge', 'sam2_*',
            'abswin_*').
        checkpoint: backbone weights; default the arch's ``hf://facebook/hiera-*-224-hf``
            (required for SAM2 trunks and abswin models).
        drop_path_rate: stochastic depth; default per size (see ``DEFAULT_DROP_PATH``).
        lr: learning rate; default by ``LR_RULE``.
        out_file: where the text will be written; a relative ``config`` path is then written as
            ``_base_`` relative to that file's folder.

    Raises:
        ValueError: the config cannot be adapted automatically (the message says why).
    """
    return plan_swap(config, arch, checkpoint, drop_path_rate, lr, out_file).text
