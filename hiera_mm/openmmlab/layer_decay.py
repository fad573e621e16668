"""Layer-wise learning-rate decay for a Hiera backbone inside an OpenMMLab model (mmdet, mmseg).

``HieraLayerDecayOptimizerConstructor`` extends mmengine's ``DefaultOptimWrapperConstructor``:
the default logic first decides every parameter's lr / weight decay (``custom_keys``,
``norm_decay_mult``, ``bias_lr_mult``, ``bias_decay_mult``, ``flat_decay_mult``,
``dwconv_decay_mult``, ``bypass_duplicate``, ...), then the lr of each parameter is multiplied by
the scale of the Hiera "layer" it belongs to. Usage in a config::

    optim_wrapper = dict(
        type='OptimWrapper',
        constructor='HieraLayerDecayOptimizerConstructor',
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.1),
        paramwise_cfg=dict(
            layer_decay_rate=0.7,
            norm_decay_mult=0.,
            custom_keys={'pos_embed': dict(decay_mult=0.), 'neck': dict(lr_mult=2.)}))

Layer ids (``L`` = number of blocks in ``model.backbone.trunk.blocks``):

* ``backbone.trunk.patch_embed.*`` and ``backbone.trunk.pos_embed*``: layer 0;
* ``backbone.trunk.blocks.{g}.*``: layer ``g + 1`` (``g`` counts blocks over all stages);
* ``backbone.out_norms.stage{s}.*``: one layer above the last block of stage ``s``, i.e.
  ``stage_ends[s - 1] + 2`` (so the norm on the last stage lands in layer ``L + 1``);
* everything else (other backbone parameters, neck, heads): layer ``L + 1``.

Layer ``i`` gets ``lr_scale = layer_decay_rate ** (L + 1 - i)``, so the neck and heads train at
the configured lr and the patch embedding at ``lr * layer_decay_rate ** (L + 1)``.
"""
import math
from collections import OrderedDict
from numbers import Real
from typing import Dict, List, Optional, Sequence

import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS

from ..models.stages import hiera_layer_id, lr_decay_scale, strip_ddp_prefix

__all__ = ['HieraLayerDecayOptimizerConstructor', 'get_hiera_layer_id']


def get_hiera_layer_id(param_name: str, num_blocks: int, stage_ends: Sequence[int]) -> int:
    """Return the layer-decay layer id of a model parameter with a Hiera backbone.

    Args:
        param_name: full parameter name in the detector, e.g.
            ``'backbone.trunk.blocks.3.attn.qkv.weight'`` (a leading ``module.`` is ignored).
        num_blocks: ``L``, the number of Hiera blocks over all stages.
        stage_ends: global index of the last block of each stage, e.g. ``[0, 2, 9, 11]``.

    Returns:
        An int in ``[0, L + 1]``: 0 for the patch embedding / positional embeddings, ``g + 1`` for
        block ``g``, ``stage_ends[s - 1] + 2`` for ``backbone.out_norms.stage{s}`` and ``L + 1``
        for everything else.
    """
    name = strip_ddp_prefix(param_name)
    if name.startswith('backbone.'):
        return hiera_layer_id(name[len('backbone.'):], num_blocks, stage_ends)
    return num_blocks + 1


class HieraLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` plus layer-wise lr decay over a Hiera trunk.

    ``paramwise_cfg`` accepts every option of ``DefaultOptimWrapperConstructor`` plus
    ``layer_decay_rate`` (float in ``(0, 1]``, default 1.0 = no decay). The final lr of a
    parameter is ``base_lr * (multipliers of the default logic, e.g. custom_keys lr_mult) *
    layer_decay_rate ** (L + 1 - layer_id)``; its weight decay is what the default logic decides.

    Parameters that end up with identical settings are merged into one param group; each group
    carries ``layer_id`` and ``lr_scale`` for inspection and logging. Groups are ordered from the
    top layer (``L + 1``) down, so the ``lr`` that mmengine logs (group 0) is an undecayed one.
    Frozen parameters (``requires_grad=False``) are treated by the default logic (mmengine 0.10
    leaves them out of the optimizer when ``paramwise_cfg`` is given); whatever groups it makes
    get their layer's lr scale as well.

    The model must be a detector whose ``backbone.trunk`` has ``blocks`` (an ``nn.ModuleList``)
    and ``stage_ends``, as ``HieraBackbone`` provides.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = {} if paramwise_cfg is None else dict(paramwise_cfg)
        self.layer_decay_rate = self._check_rate(paramwise_cfg.pop('layer_decay_rate', 1.0))
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    @staticmethod
    def _check_rate(rate) -> float:
        if (isinstance(rate, bool) or not isinstance(rate, Real) or not math.isfinite(rate)
                or not 0.0 < rate <= 1.0):
            raise ValueError('paramwise_cfg.layer_decay_rate must be a float in (0, 1] '
                             f'(1.0 disables layer decay), got {rate!r}')
        return float(rate)

    @staticmethod
    def _get_trunk_layout(model: nn.Module):
        """Return ``(L, stage_ends)`` read from ``model.backbone.trunk``."""
        trunk = getattr(getattr(model, 'backbone', None), 'trunk', None)
        blocks = getattr(trunk, 'blocks', None)
        if not isinstance(blocks, nn.ModuleList):
            raise ValueError(
                'HieraLayerDecayOptimizerConstructor is for detectors with a HieraBackbone: it '
                'needs `model.backbone.trunk.blocks` (an nn.ModuleList of Hiera blocks), but '
                f'{type(model).__name__} has none. Use DefaultOptimWrapperConstructor (or '
                'another constructor) for other backbones.')
        stage_ends = getattr(trunk, 'stage_ends', None)
        if stage_ends is None:
            raise ValueError(
                'HieraLayerDecayOptimizerConstructor is for detectors with a HieraBackbone: '
                '`model.backbone.trunk.stage_ends` (index of the last block of each stage) is '
                'missing.')
        stage_ends = [int(s) for s in stage_ends]
        num_blocks = len(blocks)
        if any(not 0 <= s < num_blocks for s in stage_ends):
            raise ValueError(f'model.backbone.trunk.stage_ends={stage_ends} does not fit the '
                             f'{num_blocks} blocks of the trunk')
        return num_blocks, stage_ends

    def _group_key(self, group: dict) -> tuple:
        return tuple((k, repr(v)) for k, v in sorted(group.items()) if k != 'params')

    def build_param_groups(self, model: nn.Module) -> List[dict]:
        """Return the param groups (default logic + layer decay) for ``model``."""
        if hasattr(model, 'module'):
            model = model.module
        num_blocks, stage_ends = self._get_trunk_layout(model)
        num_layers = num_blocks + 2  # ids 0 .. L + 1

        names: Dict[int, str] = {}
        for name, param in model.named_parameters(remove_duplicate=False):
            names.setdefault(id(param), name)

        default_groups: List[dict] = []
        self.add_params(default_groups, model)

        merged: 'OrderedDict[tuple, dict]' = OrderedDict()
        layer_members: Dict[int, List[str]] = {i: [] for i in range(num_layers)}
        for group in default_groups:
            params = group['params']
            layer_ids = {get_hiera_layer_id(names[id(p)], num_blocks, stage_ends) for p in params}
            if len(layer_ids) != 1:  # the default logic makes one group per param; be safe
                raise RuntimeError(f'a default param group spans layers {sorted(layer_ids)}')
            layer_id = layer_ids.pop()
            scale = lr_decay_scale(self.layer_decay_rate, layer_id, num_blocks)
            new_group = {k: v for k, v in group.items() if k != 'params'}
            base = new_group.get('lr', self.base_lr)
            if base is None:
                if scale != 1.0:
                    raise ValueError('layer_decay_rate < 1 needs an explicit optimizer lr '
                                     '(optim_wrapper.optimizer.lr)')
            else:
                new_group['lr'] = base * scale
            new_group['layer_id'] = layer_id
            new_group['lr_scale'] = scale
            key = self._group_key(new_group)
            if key not in merged:
                new_group['params'] = []
                merged[key] = new_group
            merged[key]['params'].extend(params)
            layer_members[layer_id].extend(names[id(p)] for p in params)

        # Top layer first: mmengine logs the lr of param group 0 as `lr`, which should then be
        # the lr of the neck / heads rather than the (most decayed) patch embedding's.
        groups = sorted(merged.values(), key=lambda g: -g['layer_id'])
        self._log_summary(groups, layer_members, num_blocks, stage_ends)
        return groups

    def _log_summary(self, groups: List[dict], layer_members: Dict[int, List[str]],
                     num_blocks: int, stage_ends: List[int]) -> None:
        logger = MMLogger.get_current_instance()
        lines = [f'HieraLayerDecayOptimizerConstructor: layer_decay_rate={self.layer_decay_rate}, '
                 f'{num_blocks} blocks, stage_ends={stage_ends}, {num_blocks + 2} layers, '
                 f'{len(groups)} param groups']
        for layer_id, members in layer_members.items():
            if not members:
                continue
            scale = lr_decay_scale(self.layer_decay_rate, layer_id, num_blocks)
            mine = [g for g in groups if g['layer_id'] == layer_id]
            lrs = sorted({g.get('lr', self.base_lr) for g in mine},
                         key=lambda v: -1 if v is None else v)
            wds = sorted({g.get('weight_decay', self.base_wd) for g in mine},
                         key=lambda v: -1 if v is None else v)
            lrs = ', '.join('default' if v is None else f'{v:.4g}' for v in lrs)
            wds = ', '.join('default' if v is None else f'{v:.4g}' for v in wds)
            example = members[0] if len(members) == 1 else f'{members[0]} .. {members[-1]}'
            lines.append(f'  layer {layer_id:>3}: lr_scale={scale:.4g} lr=[{lrs}] '
                         f'weight_decay=[{wds}] {len(members)} tensors ({example})')
        logger.info('\n'.join(lines))

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if hasattr(model, 'module'):
            model = model.module
        optim_wrapper_cfg = self.optim_wrapper_cfg.copy()
        optim_wrapper_cfg.setdefault('type', 'OptimWrapper')
        optimizer_cfg = self.optimizer_cfg.copy()
        optimizer_cfg['params'] = self.build_param_groups(model)
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(optim_wrapper_cfg, default_args=dict(optimizer=optimizer))
