"""The detector-specific changes: each a small function giving the change and its reason;
``plan_swap`` reads the base config and composes them with the changes every framework's
config gets (``hiera_mm_tools.swap``) into the new config."""
from __future__ import annotations

import math
from typing import Optional

from hiera_mm.archs import SIZE_DIVISOR

from ...frameworks import read_config
from ..analyse import read_model, read_optim_wrapper, stages_read
from ..changes import (SwapPlan, backbone_change, checkpoint_hook_change, finish_plan,
                       hooks_change, imports_entry, load_from_change, normalisation_change,
                       reader_change)
from ..hiera_backbone import weights_and_drop_path
from ..optimizer import optim_wrapper_change
from ..probe import probe_backbone
from ..render import Change
from .necks import find_consumer

IMPORT = 'hiera_mm.mmdet'  # registers HieraBackbone and the hooks into mmdet


def preprocessor_change(pre: Optional[dict]) -> Change:
    """Hiera's normalisation (``normalisation_change``), and a pad_size_divisor that is a
    multiple of 32: Hiera pads every input to whole mask units itself; padded batches make that
    a no-op and keep padding masks aligned with the features. Only what differs is stated, the
    rest inherited."""
    if not isinstance(pre, dict):
        pre, update = {}, {'type': 'DetDataPreprocessor'}
    else:
        update = {}
    normalisation = normalisation_change(pre)
    update.update(normalisation.update)
    notes, comments = list(normalisation.notes), list(normalisation.comments)
    pad = int(pre.get('pad_size_divisor', 1) or 1)
    if pad % SIZE_DIVISOR:
        new_pad = update['pad_size_divisor'] = math.lcm(pad, SIZE_DIVISOR)
        notes.append(f'data_preprocessor: pad_size_divisor {pad} -> {new_pad} (Hiera pads inputs '
                     f'to multiples of {SIZE_DIVISOR} anyway; padding the batch makes that '
                     'a no-op and keeps padding masks aligned with the features).')
        comments.append(f'pad_size_divisor {pad} -> {new_pad}: Hiera pads to '
                        f'{SIZE_DIVISOR}-pixel mask units anyway.')
    return Change(update or None, notes, comments)


def plan_swap(config: str, arch: str, checkpoint: Optional[str] = None,
              drop_path_rate: Optional[float] = None, lr: Optional[float] = None,
              out_file: Optional[str] = None) -> SwapPlan:
    """Decide every change and write the new config's text; the arguments as
    ``swap_backbone``'s."""
    checkpoint, drop_path_rate = weights_and_drop_path(arch, checkpoint, drop_path_rate)
    cfg = read_config(config)
    model = read_model(cfg, config)
    reader = find_consumer(model, config)
    outputs = probe_backbone(model['backbone'], config, 'mmdet', cfg.get('custom_imports'))
    given, read = stages_read(reader, outputs, config)

    changes = {  # in the order of the decisions
        'backbone': backbone_change(arch, read, checkpoint, drop_path_rate, outputs,
                                    reader.where),
        reader.where: reader_change(model, reader, given, read, arch),
        'data_preprocessor': preprocessor_change(model.get('data_preprocessor')),
        'optim_wrapper': optim_wrapper_change(read_optim_wrapper(cfg),
                                              cfg.get('auto_scale_lr') or {}, lr, arch, read),
        'custom_hooks': hooks_change(cfg.get('custom_hooks')),
        'default_hooks': checkpoint_hook_change(cfg.get('default_hooks')),
        'load_from': load_from_change(cfg.get('load_from')),
    }
    return finish_plan(changes, ('data_preprocessor', 'backbone', reader.where), config=config,
                       arch=arch, out_file=out_file,
                       imports=imports_entry(cfg.get('custom_imports'), IMPORT),
                       checkpoint=checkpoint, remarks=[outputs.remark] * bool(outputs.remark))


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
        drop_path_rate: stochastic depth; default per size (``hiera_mm.archs.DEFAULT_DROP_PATH``).
        lr: learning rate; default by ``LR_RULE``.
        out_file: where the text will be written; a relative ``config`` path is then written as
            ``_base_`` relative to that file's folder.

    Raises:
        ValueError: the config cannot be adapted automatically (the message says why).
    """
    return plan_swap(config, arch, checkpoint, drop_path_rate, lr, out_file).text
