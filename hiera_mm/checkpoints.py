"""Hiera checkpoints in every published layout: read, detect the layout, map to our names.

Layouts (keys after removing wrappers such as ``model_state`` / ``model`` / ``state_dict``):

* ``hf``:     transformers ``HieraModel`` (``embeddings.*``, ``encoder.stages.{s}.layers.{l}.*``), also
              under ``hiera.`` for ``HieraForImageClassification`` / ``HieraForPreTraining``;
* ``fair``:   facebookresearch/hiera (``patch_embed.proj``, ``pos_embed`` (1, N, C), ``blocks.{g}``,
              ``head.projection``) and timm's ``hiera_*_224`` (same names, ``head.fc`` / ``head.norm``);
* ``timm_abswin``: timm's ``hiera_*_abswin_256``: the ``fair`` names plus ``pos_embed_win``, an NCHW
              ``pos_embed`` and LayerScale gains ``blocks.{g}.ls1.gamma`` / ``ls2.gamma``;
* ``sam2``:   SAM2 / SAM2.1 checkpoints, the trunk under ``image_encoder.trunk.``;
* ``hiera_mm``: ours (``trunk.*`` / ``out_norms.*``), bare, or inside a detector (``backbone.``).

Everything is mapped to the names of ``hiera_mm.models.hiera.Hiera`` with the position embedding
as an NCHW map. No file is unpickled beyond tensors (``weights_only=True``); safetensors preferred.
This module needs torch, safetensors and (for ``hf://`` ids) huggingface_hub, not the mm stack.
"""
from __future__ import annotations

import math
import os
import re
import urllib.parse
from typing import Optional

import torch

from .archs import ARCH_SETTINGS, HUB_IDS

HF_PREFIX = 'hf://'
LAYOUTS = ('hf', 'fair', 'timm_abswin', 'sam2', 'hiera_mm')
_WRAPPERS = ('model_state', 'model', 'state_dict', 'module')


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the backbone; the message says why."""


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------
def _download_hf(repo_id: str) -> str:
    """Local snapshot folder of an HF hub repo (cached by huggingface_hub under HF_HOME)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    revision = None
    if '@' in repo_id:
        repo_id, revision = repo_id.split('@', 1)
    try:
        return snapshot_download(repo_id, revision=revision,
                                 allow_patterns=['*.safetensors', '*.safetensors.index.json',
                                                 '*.bin', '*.bin.index.json', 'config.json'])
    except LocalEntryNotFoundError as err:
        from huggingface_hub import constants
        raise CheckpointError(
            f"cannot get '{HF_PREFIX}{repo_id}': it is not in the local Hugging Face cache "
            f'({constants.HF_HUB_CACHE}) and the hub cannot be reached'
            f"{' (HF_HUB_OFFLINE is set)' if constants.HF_HUB_OFFLINE else ''}. Fix: on a machine "
            f"with internet run `huggingface-cli download {repo_id}` and copy its cache folder "
            'here (or point HF_HOME at it), or download the files and give the local folder or '
            'file path as the checkpoint instead.') from err
    except Exception as err:  # repo missing, auth, network: keep the hub's own explanation
        raise CheckpointError(f"cannot get '{HF_PREFIX}{repo_id}' from the Hugging Face hub: "
                              f'{type(err).__name__}: {err}') from err


def _read_folder(path: str) -> dict:
    """A folder written by transformers' save_pretrained (safetensors first, then .bin)."""
    import json
    for index_name, reader in (('model.safetensors.index.json', _read_safetensors),
                               ('pytorch_model.bin.index.json', _read_torch)):
        index = os.path.join(path, index_name)
        if os.path.isfile(index):
            with open(index) as f:
                shards = sorted(set(json.load(f)['weight_map'].values()))
            state = {}
            for shard in shards:
                state.update(reader(os.path.join(path, shard)))
            return state
    for name in ('model.safetensors', 'pytorch_model.bin'):
        if os.path.isfile(os.path.join(path, name)):
            return read_state_dict(os.path.join(path, name))
    raise CheckpointError(f"folder '{path}' holds no model.safetensors or pytorch_model.bin "
                          '(expected a folder written by save_pretrained)')


def _read_safetensors(path: str) -> dict:
    from safetensors.torch import load_file
    try:
        return load_file(path, device='cpu')
    except Exception as err:
        raise CheckpointError(f"'{path}' is not a readable safetensors file ({err}); it may be "
                              'truncated or corrupt: download or convert it again') from err


def _read_torch(path: str) -> dict:
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:
        if 'weights_only' in str(err) or 'Unsupported global' in str(err):
            raise CheckpointError(
                f"'{path}' holds Python objects besides tensors (an mmengine training checkpoint?). "
                'Backbone init reads tensors only; to start from a trained detector use '
                '`load_from=` in the config, or extract the weights with '
                '`python tools/model_converters/convert_weights.py SRC DST.safetensors`.') from err
        raise CheckpointError(f"'{path}' is not a readable checkpoint ({type(err).__name__}: "
                              f'{err}); it may be truncated or corrupt: download it again') from err


def _read_url(url: str) -> dict:
    """An http(s) file, downloaded once into torch.hub's cache ($TORCH_HOME/hub/checkpoints)."""
    import torch.hub
    name = os.path.basename(urllib.parse.urlparse(url).path) or 'checkpoint.pth'
    path = os.path.join(torch.hub.get_dir(), 'checkpoints', name)
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.hub.download_url_to_file(url, path)
    return _read_safetensors(path) if name.endswith('.safetensors') else _read_torch(path)


def read_state_dict(source: str) -> dict:
    """Tensors of a checkpoint given as ``hf://org/name[@rev]``, a folder, a file or a URL."""
    source = os.fspath(source)
    if source.startswith(HF_PREFIX):
        return _read_folder(_download_hf(source[len(HF_PREFIX):]))
    if re.match(r'^https?://', source):
        return _read_url(source)
    if re.match(r'^[a-z0-9+]+://', source):  # s3://, ...: the storage backends of mmengine
        try:
            from mmengine.runner import CheckpointLoader
        except ImportError as err:
            raise CheckpointError(f"'{source}': reading this scheme needs mmengine's storage "
                                  'backends; install mmengine or copy the file to a local '
                                  'path') from err
        return CheckpointLoader.load_checkpoint(source, map_location='cpu')
    if os.path.isdir(source):
        return _read_folder(source)
    if not os.path.isfile(source):
        raise CheckpointError(f"checkpoint '{source}' does not exist (give a file, a folder "
                              "written by save_pretrained, or a hub id as "
                              f"'{HF_PREFIX}{HUB_IDS['tiny']}')")
    if source.endswith('.safetensors'):
        return _read_safetensors(source)
    return _read_torch(source)


# ---------------------------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------------------------
def _unwrap(state: dict) -> dict:
    for key in _WRAPPERS:
        if key in state and isinstance(state[key], dict) and not torch.is_tensor(state[key]):
            return _unwrap(state[key])
    return state


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def detect_layout(state: dict) -> tuple[str, str]:
    """(layout, key prefix of the Hiera trunk) of an unwrapped state dict."""
    keys = list(state)
    for prefix in ('', 'backbone.', 'module.backbone.'):
        if any(k.startswith(prefix + 'trunk.blocks.') for k in keys):
            return 'hiera_mm', prefix
    for prefix in ('', 'image_encoder.trunk.', 'trunk.'):
        if (prefix + 'pos_embed_window') in state:
            return 'sam2', prefix
    for prefix in ('', 'hiera.'):
        if (prefix + 'embeddings.patch_embeddings.projection.weight') in state:
            return 'hf', prefix
    for prefix in ('', 'backbone.', 'encoder.'):
        if (prefix + 'patch_embed.proj.weight') in state and any(
                k.startswith(prefix + 'blocks.') for k in keys):
            return ('timm_abswin' if (prefix + 'pos_embed_win') in state else 'fair'), prefix
    sample = ', '.join(keys[:5])
    raise CheckpointError(f'not a Hiera checkpoint in any known layout ({", ".join(LAYOUTS)}); '
                          f'its first keys are: {sample}')


def _stage_starts(state: dict) -> list[int]:
    """Global block index of each stage's first block: where a block widens (norm1 vs norm2), which
    holds with and without the expand projection."""
    widths = {}
    for k, v in state.items():
        if m := re.match(r'blocks\.(\d+)\.norm([12])\.weight$', k):
            widths.setdefault(int(m[1]), {})[m[2]] = v.shape[0]
    return [0] + sorted(b for b, w in widths.items() if w.get('1') != w.get('2')) if widths else []


def _from_hf(state: dict) -> tuple[dict, list]:
    stage_layers: dict = {}
    for k in state:
        if m := re.match(r'encoder\.stages\.(\d+)\.layers\.(\d+)\.', k):
            stage_layers[int(m[1])] = max(stage_layers.get(int(m[1]), 0), int(m[2]) + 1)
    starts = [sum(stage_layers[s] for s in range(i)) for i in range(len(stage_layers))]
    out, dropped = {}, []
    for k, v in state.items():
        if k == 'embeddings.position_embeddings':
            out['pos_embed'] = v
        elif k.startswith('embeddings.patch_embeddings.projection.'):
            out['patch_embed.proj.' + k.rsplit('.', 1)[1]] = v
        elif m := re.match(r'encoder\.stages\.(\d+)\.layers\.(\d+)\.(.+)', k):
            rest = m[3].replace('layernorm_before', 'norm1').replace('layernorm_after', 'norm2')
            out[f'blocks.{starts[int(m[1])] + int(m[2])}.{rest}'] = v
        else:
            dropped.append(k)
    return out, dropped


# timm's abswin names; 'pos_embed_abs' is the pre-release name timm's own loader still renames.
_FAIR_RENAMES = {'pos_embed_win': 'pos_embed_window', 'pos_embed_abs': 'pos_embed'}


def _from_fair(state: dict) -> tuple[dict, list]:
    out, dropped = {}, []
    for k, v in state.items():
        if k in ('pos_embed', *_FAIR_RENAMES) or k.startswith(('patch_embed.', 'blocks.')):
            out[_FAIR_RENAMES.get(k, k)] = v
        else:
            dropped.append(k)
    return out, dropped


def _from_sam2(state: dict) -> tuple[dict, list]:
    out, dropped = {}, []
    for k, v in state.items():
        if k in ('pos_embed', 'pos_embed_window') or k.startswith(('patch_embed.', 'blocks.')):
            out[re.sub(r'\.mlp\.layers\.(\d)\.', lambda m: f'.mlp.fc{int(m[1]) + 1}.', k)] = v
        else:
            dropped.append(k)
    return out, dropped


def convert_state_dict(state: dict) -> dict:
    """Map any supported layout to ``{'trunk': ..., 'out_norms': ..., 'layout', 'dropped'}``.

    ``trunk`` uses ``Hiera``'s parameter names; ``dropped`` lists keys that are not part of the
    trunk (classifier heads, MAE decoders, SAM2's neck and mask decoder, ...).
    """
    full = _unwrap(state)
    layout, prefix = detect_layout(full)
    body = _strip(full, prefix) if prefix else dict(full)
    dropped = [k for k in full if not k.startswith(prefix)]
    out_norms = {}
    if layout == 'hiera_mm':
        trunk = _strip(body, 'trunk.')
        out_norms = _strip(body, 'out_norms.')
        dropped += [k for k in body if not k.startswith(('trunk.', 'out_norms.'))]
    else:
        trunk, more = {'hf': _from_hf, 'fair': _from_fair, 'timm_abswin': _from_fair,
                       'sam2': _from_sam2}[layout](body)
        dropped += [prefix + k for k in more]
    pos = trunk.get('pos_embed')
    if pos is not None and pos.ndim == 3:  # (1, N, C) token list of a square grid -> (1, C, h, w)
        side = math.isqrt(pos.shape[1])
        if side * side != pos.shape[1]:
            raise CheckpointError(f'position embedding with {pos.shape[1]} tokens is not a square grid')
        trunk['pos_embed'] = pos.reshape(1, side, side, -1).permute(0, 3, 1, 2).contiguous()
    return dict(layout=layout, trunk=trunk, out_norms=out_norms, dropped=dropped)


def guess_arch(trunk: dict) -> Optional[str]:
    """Name of the arch whose width and depths match a converted trunk state dict, if any."""
    if 'patch_embed.proj.weight' not in trunk:
        return None
    width = trunk['patch_embed.proj.weight'].shape[0]
    num_blocks = 1 + max(int(m[1]) for k in trunk if (m := re.match(r'blocks\.(\d+)\.', k)))
    starts = _stage_starts(trunk) + [num_blocks]
    depths = tuple(b - a for a, b in zip(starts[:-1], starts[1:]))
    # The family: window position embedding (SAM2, abswin), LayerScale, expand projections.
    family = ('pos_embed_window' in trunk, any(k.endswith('.ls1.gamma') for k in trunk),
              any(re.match(r'blocks\.\d+\.proj\.weight$', k) for k in trunk))
    for name, arch in ARCH_SETTINGS.items():
        arch_family = (arch.get('pos_embed') == 'abs_win', arch.get('layer_scale') is not None,
                       arch.get('expand_proj', True))
        if (arch['embed_dim'], tuple(arch['depths']), arch_family) == (width, depths, family) \
                and not name.startswith('sam2.1'):
            return name
    return f'custom (embed_dim={width}, depths={depths})'
