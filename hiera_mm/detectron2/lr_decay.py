"""Layer-wise lr decay for a Hiera backbone in Detectron2 (``lr_factor_func``).

Detectron2's ``get_default_optimizer_params(model, ..., lr_factor_func=f)`` multiplies the lr of
each parameter by ``f('<module name>.<param name>')``. ``get_hiera_lr_decay_rate`` is such an
``f`` once the arch and the decay rate are bound, as in a LazyConfig::

    from functools import partial
    from hiera_mm.detectron2 import get_hiera_lr_decay_rate

    optimizer.params.lr_factor_func = partial(get_hiera_lr_decay_rate, arch='base',
                                              lr_decay_rate=0.8)

Layer ids are those of ``HieraStages.layer_id`` and the mmdet/mmseg layer-decay constructor
(``L`` = number of Hiera blocks): patch and position embeddings 0, block ``g`` (counted over all
stages) ``g + 1``, ``out_norms.stage{s}`` one above the last block of stage ``s``, anything else
in the backbone ``L + 1``. The factor is ``lr_decay_rate ** (L + 1 - id)``; parameters outside
the backbone (FPN, heads) get 1.
"""
from __future__ import annotations

import inspect
from numbers import Real
from typing import Optional, Sequence, Union

from ..archs import check_arch
from ..models.hiera import Hiera
from ..models.stages import hiera_layer_id, lr_decay_scale, strip_ddp_prefix

__all__ = ['get_hiera_lr_decay_rate', 'hiera_depths']

_DEFAULT_DEPTHS = tuple(inspect.signature(Hiera).parameters['depths'].default)


def hiera_depths(arch: Union[str, dict]) -> tuple[int, ...]:
    """Blocks per stage of an arch name or ``Hiera`` argument dict."""
    if isinstance(arch, str):
        return tuple(check_arch(arch)['depths'])
    if isinstance(arch, dict):
        return tuple(int(d) for d in arch.get('depths', _DEFAULT_DEPTHS))
    raise TypeError(f'arch must be an arch name or a dict of Hiera arguments, got {arch!r}')


def get_hiera_lr_decay_rate(name: str, lr_decay_rate: float = 1.0,
                            num_layers: Optional[int] = None, *,
                            arch: Union[str, dict, None] = None,
                            stage_ends: Optional[Sequence[int]] = None,
                            prefix: str = 'backbone.bottom_up.') -> float:
    """lr factor of parameter ``name`` of a detector with a Hiera backbone.

    Args:
        name (str): the full parameter name in the model, as Detectron2 passes it
            (``'backbone.bottom_up.trunk.blocks.3.attn.qkv.weight'``); a DDP ``module.`` prefix
            is ignored.
        lr_decay_rate (float): decay per block, in (0, 1]; 1 disables the decay.
        num_layers (int, optional): number of Hiera blocks ``L`` (ViTDet's meaning); with
            ``stage_ends`` an alternative to ``arch``.
        arch (str | dict, optional): the backbone's arch (name or ``Hiera`` argument dict), from
            which ``L`` and the stage ends follow. Give either ``arch`` or both ``num_layers``
            and ``stage_ends``.
        stage_ends (Sequence[int], optional): global index of the last block of each stage,
            e.g. ``(0, 2, 9, 11)`` for 'tiny'.
        prefix (str): where the ``HieraBackbone`` sits in the model: ``'backbone.bottom_up.'``
            under Detectron2's FPN (default), ``'backbone.'`` without one.

    Returns:
        float: ``lr_decay_rate ** (L + 1 - layer_id)``, 1.0 outside the backbone.
    """
    if isinstance(lr_decay_rate, bool) or not isinstance(lr_decay_rate, Real) \
            or not 0 < lr_decay_rate <= 1:
        raise ValueError(f'lr_decay_rate must be a number in (0, 1], got {lr_decay_rate!r}')
    if arch is not None:
        if num_layers is not None or stage_ends is not None:
            raise ValueError('give either arch or num_layers and stage_ends, not both')
        depths = hiera_depths(arch)
        stage_ends = [sum(depths[:i + 1]) - 1 for i in range(len(depths))]
        num_layers = sum(depths)
    elif num_layers is None or stage_ends is None:
        raise ValueError("get_hiera_lr_decay_rate needs the backbone's shape: arch='tiny' (or an "
                         'arch dict), or num_layers (number of blocks) and stage_ends')
    elif int(stage_ends[-1]) != num_layers - 1:
        raise ValueError(f'stage_ends {list(stage_ends)} does not end at the last of '
                         f'num_layers={num_layers} blocks')
    if prefix and not prefix.endswith('.'):
        prefix += '.'
    name = strip_ddp_prefix(name)
    if not name.startswith(prefix):
        return 1.0
    layer = hiera_layer_id(name[len(prefix):], num_layers, stage_ends)
    return lr_decay_scale(float(lr_decay_rate), layer, num_layers)
