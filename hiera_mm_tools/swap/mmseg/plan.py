"""The segmentor-specific changes besides the readers: ``model.pretrained``, the data
preprocessor (normalisation, test-time padding) and the imports; ``plan_swap`` reads the base
config and composes them with the readers' changes (``readers``) and the changes every
framework's config gets (``hiera_mm_tools.swap``) into the new config."""
from __future__ import annotations

import math
from typing import Optional

from hiera_mm.archs import SIZE_DIVISOR

from ...frameworks import read_config
from ..analyse import read_model, read_optim_wrapper, stages_read
from ..changes import (SwapPlan, backbone_change, checkpoint_hook_change, finish_plan,
                       hooks_change, import_list, imports_entry, load_from_change,
                       normalisation_change, reader_change)
from ..hiera_backbone import weights_and_drop_path
from ..literals import Code
from ..optimizer import optim_wrapper_change
from ..probe import probe_backbone
from ..render import Change
from .readers import (SCOPE, check_dilated_resnet, check_plain_vit, check_segmentor,
                      heads_change, neck_reader)

IMPORT = 'hiera_mm.mmseg'  # registers HieraBackbone and the hooks into mmseg


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
    if size is None and divisor and divisor % SIZE_DIVISOR:
        update['size_divisor'] = math.lcm(divisor, SIZE_DIVISOR)
        notes.append(f"data_preprocessor: size_divisor {divisor} -> {update['size_divisor']} "
                     f'(Hiera pads inputs to multiples of {SIZE_DIVISOR}).')
    if size is not None and any(int(s) % SIZE_DIVISOR for s in size):
        notes.append(f'data_preprocessor: training crops are padded to {tuple(size)}, not a '
                     f'multiple of {SIZE_DIVISOR}: Hiera pads them further itself and the '
                     'logits are stretched over the crop (a crop of multiples of 32 avoids it).')
    test_cfg = pre.get('test_cfg') or {}
    if not test_cfg.get('size') and (test_cfg.get('size_divisor') or 1) % SIZE_DIVISOR:
        old = test_cfg.get('size_divisor')
        update['test_cfg'] = dict(size_divisor=math.lcm(old or 1, SIZE_DIVISOR))
        notes.append(f'data_preprocessor.test_cfg: size_divisor {old} -> '
                     f"{update['test_cfg']['size_divisor']} (Hiera pads inputs to "
                     f'{SIZE_DIVISOR}-pixel mask units; padded here, mmseg crops the '
                     'padding off the logits instead of stretching them over the image).')
        comments.append(f'test_cfg: pad test images to {SIZE_DIVISOR}-pixel mask units '
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
    # mmseg first, then hiera_mm.mmseg (which registers into it).
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
    outputs = probe_backbone(old_backbone, config, SCOPE, cfg.get('custom_imports'))

    if model.get('neck') is not None:
        reader = neck_reader(model['neck'], config)
        given, read = stages_read(reader, outputs, config)
        reader_changes = {'neck': reader_change(model, reader, given, read, arch)}
        reader_name = 'neck'
    else:
        read, reader_changes = heads_change(model, outputs, arch, config)
        reader_name = 'heads'
    imports, imports_note = imports_change(cfg.get('custom_imports'), model, old_backbone)

    changes = {  # in the order of the decisions
        'backbone': backbone_change(arch, read, checkpoint, drop_path_rate, outputs,
                                    reader_name, 'read' if reader_name == 'heads' else 'reads'),
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
                       checkpoint=checkpoint, remarks=[outputs.remark] * bool(outputs.remark))


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
        drop_path_rate: stochastic depth; default per size (``hiera_mm.archs.DEFAULT_DROP_PATH``).
        lr: learning rate; default by ``LR_RULE``.
        out_file: where the text will be written; a relative ``config`` path is then written as
            ``_base_`` relative to that file's folder.

    Raises:
        ValueError: the config cannot be adapted automatically (the message says why and what
            to swap instead).
    """
    return plan_swap(config, arch, checkpoint, drop_path_rate, lr, out_file).text

