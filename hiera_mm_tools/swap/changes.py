"""The changes every framework's new config gets, each a small function giving the change and
its reason: the backbone, the inputs of the part reading it (a neck, a head), Hiera's
normalisation, the imports, hooks and ``load_from``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from hiera_mm.archs import IMAGENET_MEAN, IMAGENET_STD, stage_widths

from .analyse import Consumer
from .hiera_backbone import backbone_entry
from .literals import Code
from .render import Change, Fields, Statement, base_reference, config_text, header_lines

GENERATOR = 'tools/swap_backbone.py'
# What every Hiera run declares, so that all launchers (ours, the frameworks' tools, mim,
# Runner.from_cfg) register the same hooks (registered by hiera_mm.mmdet / hiera_mm.mmseg).
RUN_HOOKS = ('FiniteLossHook', 'TrustRunCheckpointsHook')
NORMALISATION_KEYS = {'mean', 'std', 'bgr_to_rgb'}


@dataclass
class SwapPlan:
    """What ``swap_backbone`` decided: the new config's text, one line per decision (in the
    text's header) and remarks on how it was decided (printed, not written)."""
    base: str
    text: str = ''
    decisions: list = field(default_factory=list)
    remarks: list = field(default_factory=list)


def backbone_change(arch: str, stages: tuple, checkpoint: str, drop_path_rate: float,
                    outputs, reader: str, verb: str = 'reads') -> Change:
    """HieraBackbone of ``arch`` emitting the stages ``reader`` (e.g. 'neck') reads, in place
    of the old backbone (``outputs``: what it handed on, ``probe.BackboneOutputs``)."""
    note = (f"backbone: {outputs.type} ({outputs.describe()}) -> HieraBackbone arch '{arch}', "
            f'out_indices {tuple(stages)}, drop_path_rate {drop_path_rate}, weights '
            f'{checkpoint}.')
    return Change(backbone_entry(arch, stages, drop_path_rate), [note],
                  [f'stages {tuple(stages)}: the ones the {reader} {verb}'])


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


def normalisation_change(pre: dict) -> Change:
    """Hiera's normalisation: RGB from the BGR images the pipeline loads, ImageNet mean / std
    (also over Caffe-style bases); only what differs from the base's preprocessor ``pre``."""
    update = {}
    if [float(v) for v in pre.get('mean') or []] != list(IMAGENET_MEAN):
        update['mean'] = list(IMAGENET_MEAN)
    if [float(v) for v in pre.get('std') or []] != list(IMAGENET_STD):
        update['std'] = list(IMAGENET_STD)
    if pre.get('bgr_to_rgb') is not True:
        update['bgr_to_rgb'] = True
    if NORMALISATION_KEYS & set(update):
        return Change(update, [
            f"data_preprocessor: {'BGR' if not pre.get('bgr_to_rgb') else 'RGB'} mean "
            f"{pre.get('mean')} std {pre.get('std')} -> RGB, ImageNet mean/std (Hiera's "
            'pretraining normalisation); other fields inherited.'],
            ['Hiera was pretrained on RGB images with ImageNet mean/std; the pipeline loads '
             'BGR.'])
    return Change(update, ["data_preprocessor: already Hiera's normalisation (RGB, ImageNet "
                           'mean/std).'])


def import_list(custom_imports: Optional[dict]) -> list:
    """The modules a ``custom_imports`` names (mmengine also takes a single string)."""
    imports = (custom_imports or {}).get('imports') or []
    return [imports] if isinstance(imports, str) else list(imports)


def imports_entry(custom_imports: Optional[dict], module: str,
                  dropped: Sequence[str] = (), before: Sequence[str] = ()) -> Code:
    """``custom_imports``: the base's imports but ``dropped``, then ``before`` and ``module`` (the
    framework's integration, e.g. 'hiera_mm.mmdet'); failures are fatal."""
    imports = [m for m in import_list(custom_imports)
               if m not in ('hiera_mm', module, *before, *dropped)] + [*before, module]
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


def load_from_change(load_from: Optional[str], what: str = 'detector') -> Change:
    """``load_from = None``: the base's is a whole model (a ``what``, e.g. detector) with the
    old backbone (the Hiera weights come from ``pretrained``)."""
    if load_from is None:
        return Change(None)
    note = f'load_from {load_from!r} -> None (a whole {what} with the old backbone).'
    return Change(Code('None'), [note], [f'the base loads a {what} with its old backbone'])


def config_sections(changes: dict, model_keys: Sequence[str], base: str, imports: Code,
                    checkpoint: str) -> list:
    """The new config's statements, in sections (blank lines between them): ``_base_``; the run
    (imports, hooks); the weights; ``model`` with the changes of ``model_keys`` that state
    something, in that order; the optimizer."""
    model = Fields(Statement(key, changes[key].update, changes[key].comments)
                   for key in model_keys if changes[key].update is not None)
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


def finish_plan(changes: dict, model_keys: Sequence[str], *, config: str, arch: str,
                out_file: Optional[str], imports: Code, checkpoint: str,
                remarks: Sequence[str] = ()) -> SwapPlan:
    """The plan from every decided change: the header lists their reasons, then the sections."""
    decisions = [note for change in changes.values() for note in change.notes]
    base = base_reference(config, out_file)
    sections = config_sections(changes, model_keys, base, imports, checkpoint)
    text = config_text(header_lines(GENERATOR, config, arch, decisions), sections)
    return SwapPlan(base=base, text=text, decisions=decisions, remarks=list(remarks))
