"""Reading the base config: its model and optimizer as plain Python, and which of the
backbone's outputs the part reading them (a neck, a head) is given and reads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .literals import plain


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


def read_model(cfg, config: str) -> dict:
    """``model`` of the merged config as plain Python; refused without a ``model.backbone``."""
    model = plain(cfg.get('model')) if isinstance(cfg.get('model'), dict) else None
    if not model or not isinstance(model.get('backbone'), dict):
        raise ValueError(f'config {config} has no model.backbone to replace')
    return model


def read_optim_wrapper(cfg) -> Optional[dict]:
    """``optim_wrapper`` of the merged config as plain Python (None: the base has none)."""
    return plain(cfg.get('optim_wrapper')) if isinstance(cfg.get('optim_wrapper'), dict) else None


def stages_read(consumer: Consumer, outputs, config: str) -> tuple:
    """(given, read): the Hiera stages of the backbone outputs the consumer is given (the last
    ``len(in_channels)`` of them) and of those it reads (FPN-like necks: levels
    start_level..end_level of them). ``outputs``: the probed ``BackboneOutputs``; the
    consumer's in_channels must be the widths of the outputs it is given."""
    n = len(consumer.in_channels)
    backbone_out = outputs.stages
    if n > len(backbone_out):
        raise ValueError(
            f'{consumer.where} {consumer.type} of {config} takes {n} inputs but backbone '
            f'{outputs.type} emits only out_indices {backbone_out}; edit the config by hand.')
    positions = tuple(range(len(backbone_out) - n, len(backbone_out)))
    outputs.check_widths(positions, consumer.in_channels,
                         f'{consumer.where} {consumer.type}', config)
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
