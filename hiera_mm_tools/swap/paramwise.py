"""mmengine's custom_keys rules, and the custom_keys that give Hiera's position embeddings and
LayerNorms no weight decay on top of the keys a base config already has."""
from __future__ import annotations

from typing import NamedTuple, Optional

from hiera_mm.archs import ARCH_SETTINGS

from .literals import Braces, one_line_source


def hiera_no_decay_params(arch: str, out_indices) -> list:
    """(module name, parameter names) of HieraBackbone's position embeddings and LayerNorms, named
    as in a model (``backbone.``): the parameters Hiera's recipe trains without weight decay."""
    settings = ARCH_SETTINGS[arch]
    pos = ['pos_embed'] + (['pos_embed_window'] if settings.get('pos_embed') == 'abs_win' else [])
    groups = [('backbone.trunk', pos)]
    groups += [(f'backbone.out_norms.stage{i + 1}', ['weight', 'bias']) for i in out_indices]
    for g in range(sum(settings['depths'])):
        groups += [(f'backbone.trunk.blocks.{g}.norm{j}', ['weight', 'bias']) for j in (1, 2)]
    return groups


def winning_key(name: str, custom_keys: dict) -> Optional[str]:
    """The custom key mmengine applies to a parameter: the longest one contained in its name
    (ties: alphabetical), as ``DefaultOptimWrapperConstructor.add_params``."""
    for key in sorted(sorted(custom_keys), key=len, reverse=True):
        if key in name:
            return key
    return None


def effective_settings(name: str, is_norm: bool, custom_keys: dict) -> tuple:
    """(lr_mult, decay_mult, other settings) mmengine gives a parameter (norm_decay_mult=0: a
    norm's decay_mult is 0 unless a custom key decides it)."""
    key = winning_key(name, custom_keys)
    if key is None:
        return 1.0, 0.0 if is_norm else 1.0, ()
    settings = dict(custom_keys[key])
    lr_mult, decay_mult = settings.pop('lr_mult', 1.0), settings.pop('decay_mult', 1.0)
    return float(lr_mult), float(decay_mult), tuple(sorted(settings.items()))


class _Target(NamedTuple):
    """A no-decay parameter: the keys that may single it out (general to specific, its own name
    last), the settings it should get and their effect as ``effective_settings`` gives it."""
    name: str
    is_norm: bool
    candidates: tuple
    settings: dict
    effect: tuple


def _targets(inherited: dict, arch: str, out_indices) -> list:
    """What each of Hiera's no-decay parameters should get: the inherited key's settings (e.g.
    DETR's backbone lr_mult) plus decay_mult=0."""
    targets = []
    for module, params in hiera_no_decay_params(arch, out_indices):
        is_norm = not module.endswith('.trunk')
        if not is_norm:
            candidates = ('backbone.trunk.pos_embed',)
        elif '.out_norms.' in module:
            candidates = ('backbone.out_norms', module)
        else:
            candidates = (module[:-1], module)  # 'backbone.trunk.blocks.3.norm', '...norm1'
        for param in params:
            name = f'{module}.{param}'
            winner = winning_key(name, inherited)
            want = {**(inherited[winner] if winner else {}), 'decay_mult': 0.0}
            effect = (float(want.get('lr_mult', 1.0)), 0.0, tuple(sorted(
                (k, v) for k, v in want.items() if k not in ('lr_mult', 'decay_mult'))))
            targets.append(_Target(name, is_norm, candidates + (name,), want, effect))
    return targets


def _is_met(target: _Target, keys: dict) -> bool:
    return effective_settings(target.name, target.is_norm, keys) == target.effect


def merge_custom_keys(inherited: dict, arch: str, out_indices) -> tuple:
    """custom_keys = inherited + 'pos_embed' no decay + keys that give Hiera's position
    embeddings and LayerNorms no weight decay while keeping what the inherited keys gave them
    (lr_mult ...): mmengine applies only the longest key contained in a parameter's name, and
    then skips norm_decay_mult. Returns (keys, names of the added keys).

    Added keys are, from general to specific, 'backbone.trunk.pos_embed' /
    'backbone.out_norms' / 'backbone.trunk.blocks.{g}.norm', the norm module's name, the
    parameter's name: each matches only such no-decay parameters of the backbone."""
    keys = {k: dict(v) for k, v in inherited.items()}
    keys['pos_embed'] = {**keys.get('pos_embed', {}), 'decay_mult': 0.0}
    targets = _targets(inherited, arch, out_indices)
    added = []
    for target in targets:
        for candidate in target.candidates:
            if _is_met(target, keys):
                break
            # try the key; keep it only if it fixes this parameter and breaks none it matches
            before = keys.get(candidate)
            keys[candidate] = dict(target.settings)
            if all(_is_met(t, keys) for t in targets if candidate in t.name):
                added.append(candidate)
            elif before is None:
                del keys[candidate]
            else:
                keys[candidate] = before
    wrong = [t.name for t in targets if not _is_met(t, keys)]
    if wrong:  # only with inherited keys that single out Hiera's own parameters
        raise ValueError(f'could not give {wrong[:3]} no weight decay and their inherited '
                         f'settings with custom keys {sorted(keys)}; edit paramwise_cfg by hand')
    return keys, added


def compact_custom_keys(custom_keys: dict, arch: str) -> Braces:
    """custom_keys to write: the per-block norm keys, when they cover all blocks alike, as one
    dict comprehension (mmengine's config files are Python) instead of one line per block."""
    num_blocks = sum(ARCH_SETTINGS[arch]['depths'])
    block_keys = [f'backbone.trunk.blocks.{g}.norm' for g in range(num_blocks)]
    settings = [custom_keys.get(k) for k in block_keys]
    if any(s is None or s != settings[0] for s in settings):
        return Braces(custom_keys)
    out = Braces((k, v) for k, v in custom_keys.items() if k not in block_keys)
    out.extra = (f"# norm1 and norm2 of each of the {num_blocks} blocks of Hiera-{arch}",
                 "**{f'backbone.trunk.blocks.{i}.norm': " + one_line_source(settings[0]),
                 f'   for i in range({num_blocks})}},')
    return out
