"""The optimizer change: AdamW by ``LR_RULE``, and the base's ``paramwise_cfg`` merged with no
weight decay on Hiera's norms and position embeddings."""
from __future__ import annotations

from typing import Optional

from .analyse import short_type
from .paramwise import compact_custom_keys, merge_custom_keys
from .render import Change

# The learning-rate rule, stated once: the decisions and the docs refer to it.
LR_RULE = ('lr rule: a base that already uses AdamW keeps its optimizer (lr, weight decay); '
           'otherwise AdamW(lr=1e-4 * auto_scale_lr.base_batch_size / 16, betas=(0.9, 0.999), '
           'weight_decay=0.05) (1e-4 = Swin/Hiera Mask R-CNN lr at batch 16; base_batch_size 16 '
           'if the base has no auto_scale_lr); --lr overrides both')
REFERENCE_LR, REFERENCE_BATCH = 1e-4, 16

DEFAULT_CONSTRUCTOR = 'DefaultOptimWrapperConstructor'
KEPT_CONSTRUCTORS = (DEFAULT_CONSTRUCTOR, 'HieraLayerDecayOptimizerConstructor')
# paramwise_cfg keys of layer-wise lr decay constructors (mmdet's for ConvNeXt, BEiT-like ones)
LAYER_DECAY_KEYS = ('decay_rate', 'decay_type', 'num_layers', 'layer_decay_rate')
SGD_BIAS_KEYS = ('bias_lr_mult', 'bias_decay_mult')
PARAMWISE_COMMENTS = ('paramwise_cfg in full (_delete_=True): the inherited settings, merged '
                      'with no weight',
                      'decay on norm layers and position embeddings.')


def _is_adamw(optimizer: dict) -> bool:
    return short_type(optimizer.get('type', 'none')) == 'AdamW'


def _rule_lr(auto_scale_lr: dict) -> tuple:
    """(lr, how it was derived) of ``LR_RULE`` for a base whose optimizer is replaced."""
    batch = auto_scale_lr.get('base_batch_size') or REFERENCE_BATCH
    lr = float(f'{REFERENCE_LR * batch / REFERENCE_BATCH:.6g}')
    if auto_scale_lr.get('base_batch_size'):
        return lr, f'1e-4 x auto_scale_lr.base_batch_size {batch} / 16'
    return lr, '1e-4: the base has no auto_scale_lr, batch 16 assumed'


def optimizer_change(optimizer: dict, auto_scale_lr: dict, lr: Optional[float]) -> Change:
    """``optim_wrapper.optimizer`` by ``LR_RULE`` (None: the base's AdamW as it is). The
    wrapper type (``AmpOptimWrapper`` ...), ``clip_grad`` and the schedule stay inherited."""
    if _is_adamw(optimizer):  # e.g. DETR-family recipes, tuned for their heads
        note = (f"optimizer: the base's AdamW is kept (lr {optimizer.get('lr')}, weight_decay "
                f"{optimizer.get('weight_decay')})"
                + (f', lr -> {lr} (--lr).' if lr is not None else '.'))
        if lr is None:
            return Change(None, [note], ["The base's AdamW is kept."])
        return Change({'lr': lr}, [note], ["The base's AdamW with another lr (--lr)."])
    opt_type = short_type(optimizer.get('type', 'none'))
    lr, why = _rule_lr(auto_scale_lr) if lr is None else (lr, '--lr')
    update = {'_delete_': True, 'type': 'AdamW', 'lr': lr, 'betas': (0.9, 0.999),
              'weight_decay': 0.05}
    note = (f"optimizer: {opt_type}(lr={optimizer.get('lr')}) -> AdamW(lr={lr}, betas=(0.9, "
            f'0.999), weight_decay=0.05), lr = {why}. Wrapper type, clip_grad and schedule '
            'inherited.')
    return Change(update, [note], ['AdamW instead of ' + opt_type + ', lr by the rule in the '
                                   'header.'])


def constructor_change(constructor: str, paramwise: dict) -> Change:
    """The default constructor instead of one that assigns lr by the old backbone's module
    names (e.g. ConvNeXt's layer-wise decay), whose ``LAYER_DECAY_KEYS`` then go (None: the
    constructor is kept)."""
    if constructor in KEPT_CONSTRUCTORS:
        return Change(None)
    gone = [k for k in LAYER_DECAY_KEYS if k in paramwise]
    note = (f'optim_wrapper.constructor {constructor} -> {DEFAULT_CONSTRUCTOR} (it assigns '
            "lr by the old backbone's module names)"
            + (f", its {', '.join(gone)} dropped" if gone else '')
            + "; Hiera's layer-wise lr decay is constructor='HieraLayerDecayOptimizerConstructor'"
            ' with paramwise_cfg.layer_decay_rate.')
    return Change(DEFAULT_CONSTRUCTOR, [note])


def _paramwise_note(inherited_keys: dict, dropped: list, old_norm, added: list) -> str:
    return ("paramwise_cfg: merged with the base's ("
            + (f'custom_keys {sorted(inherited_keys)} kept; ' if inherited_keys
               else 'no custom_keys; ')
            + (f"SGD-only {', '.join(dropped)} dropped; " if dropped else '')
            + (f'norm_decay_mult {old_norm} -> 0; ' if old_norm not in (None, 0, 0.0) else '')
            + "no weight decay on norms (norm_decay_mult=0.) and 'pos_embed')"
            + (f"; {len(added)} key(s) like {added[0]!r} give Hiera's position embeddings and "
               'LayerNorms no decay and keep what the inherited keys gave them (mmengine '
               'applies only the longest matching key).' if added else '.'))


def paramwise_change(paramwise: dict, arch: str, stages: tuple, *, drop_layer_decay: bool,
                     drop_sgd_bias: bool) -> Change:
    """``paramwise_cfg`` in full (``_delete_``): the base's settings and custom_keys kept,
    ``norm_decay_mult=0.``, ``'pos_embed'`` without decay and keys for Hiera's parameters where
    inherited keys would decide them (``merge_custom_keys``); the layer-decay keys of a replaced
    constructor and the SGD-only bias settings of a replaced optimizer dropped."""
    dropped = [k for k in SGD_BIAS_KEYS if k in paramwise and drop_sgd_bias]
    gone = set(dropped) | ({*LAYER_DECAY_KEYS} if drop_layer_decay else set())
    inherited_keys = dict(paramwise.get('custom_keys', None) or {})
    kept = {k: v for k, v in paramwise.items() if k not in gone and k != 'custom_keys'}
    custom_keys, added = merge_custom_keys(inherited_keys, arch, stages)
    old_norm = kept.get('norm_decay_mult')
    kept['norm_decay_mult'] = 0.0
    update = {'_delete_': True, **kept, 'custom_keys': compact_custom_keys(custom_keys, arch)}
    return Change(update, [_paramwise_note(inherited_keys, dropped, old_norm, added)])


def optim_wrapper_change(optim_wrapper: Optional[dict], auto_scale_lr: dict,
                         lr: Optional[float], arch: str, stages: tuple) -> Change:
    """``optim_wrapper`` of the new config (what differs from the base's; ``optim_wrapper``:
    the base's, plain, None where it has none): optimizer, constructor and paramwise_cfg."""
    update, notes = {}, []
    if optim_wrapper is None:
        optim_wrapper, update['type'] = {}, 'OptimWrapper'
        notes.append('optim_wrapper: the base has none; an OptimWrapper is written.')
    optimizer = optim_wrapper.get('optimizer') or {}
    changes = {'optimizer': optimizer_change(optimizer, auto_scale_lr, lr)}
    paramwise = {k: v for k, v in (optim_wrapper.get('paramwise_cfg') or {}).items()
                 if not k.startswith('_')}
    constructor = short_type(optim_wrapper.get('constructor', DEFAULT_CONSTRUCTOR))
    changes['constructor'] = constructor_change(constructor, paramwise)
    changes['paramwise_cfg'] = paramwise_change(
        paramwise, arch, stages, drop_layer_decay=changes['constructor'].update is not None,
        drop_sgd_bias=not _is_adamw(optimizer))
    for key, change in changes.items():
        if change.update is not None:
            update[key] = change.update
        notes += change.notes
    notes.append(LR_RULE + '.')
    return Change(update, notes, [*changes['optimizer'].comments, *PARAMWISE_COMMENTS])
