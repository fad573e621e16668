"""Pretrained Hiera weights in Detectron2's own loading flow.

``HFHubPathHandler`` teaches Detectron2's ``PathManager`` the ``hf://`` scheme:
``hf://facebook/hiera-base-224-hf`` (optionally ``@revision``) resolves to the local snapshot
folder in the Hugging Face cache, ``hf://org/name/model.safetensors`` to one file of it. Download
and cache are those of ``hiera_mm.checkpoints`` (huggingface_hub; ``HF_HUB_OFFLINE=1`` reads the
cache only). Importing ``hiera_mm.detectron2`` registers it.

``HieraCheckpointer`` is a ``DetectionCheckpointer`` that also reads Hiera backbone checkpoints, so
a LazyConfig says ``train.init_checkpoint = 'hf://facebook/hiera-base-224-hf'`` (or a path) and
the training script calls ``HieraCheckpointer(model, save_dir, ...).resume_or_load(path,
resume=...)``. What it does with a checkpoint, after reading it (``_load_file``) into a dict:

* **Detectron2 checkpoints load exactly as ``DetectionCheckpointer`` loads them.** These are
  - files written by ``Checkpointer.save`` (``model_final.pth``, ``model_0004999.pth``): key
    ``'model'`` holds the detector's state dict (the backbone under its place in the model, e.g.
    ``backbone.bottom_up.trunk.*``), ``'optimizer'`` / ``'scheduler'`` / any other checkpointable
    (``'trainer'`` in ``lazyconfig_train_net.py``) their states, ``'iteration'`` the step; on
    ``resume_or_load(..., resume=True)`` those are restored, otherwise only ``'model'`` is read;
  - Detectron2 / Caffe2 / pycls model-zoo files (``.pkl``, ``.pyth``), which carry
    ``'__author__'`` and ``'matching_heuristics'`` and go through Detectron2's name matching.
  A checkpoint counts as a detector checkpoint when it has ``'matching_heuristics'``, or when any
  key of its ``'model'`` dict (ignoring a DDP ``module.`` prefix) is a key of the model's own
  state dict.
* **Hiera checkpoints** in any layout of ``hiera_mm.checkpoints`` - transformers
  ``save_pretrained`` folders and ``.safetensors`` / ``pytorch_model.bin`` files, FAIR ``.pth``
  (``'model_state'``), timm state dicts, SAM2 ``.pt`` (``'model'`` with
  ``image_encoder.trunk.*``), hiera_mm backbones bare or inside an mmdet / Detectron2 detector
  saved from a model of another structure - are converted and loaded into every ``HieraStages``
  module found in the model (``backbone.bottom_up`` under an FPN, ``backbone`` without one), with
  ``HieraStages.load_pretrained``'s checks: a checkpoint of another arch raises
  ``CheckpointError`` naming the arch it looks like. The log (logger ``detectron2.hiera_mm``)
  gives ``LoadReport.summary()`` (mapped trunk tensors, dropped non-trunk tensors, newly
  initialised out norms); Detectron2's usual incompatible-keys log then lists the model's other
  parameters (neck, heads) as not found in the checkpoint and the dropped tensors as unused.
* Anything else (not Hiera, not matching the model) goes to ``DetectionCheckpointer`` unchanged.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any, Dict, List, Optional

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.utils.file_io import PathHandler, PathManager
from fvcore.common.checkpoint import _IncompatibleKeys

from .. import checkpoints
from ..archs import HUB_IDS
from ..checkpoints import CheckpointError
from ..models.stages import HieraStages, strip_ddp_prefix

__all__ = ['HFHubPathHandler', 'HieraCheckpointer', 'register_hf_path_handler']

logger = logging.getLogger('detectron2.hiera_mm')


# ---------------------------------------------------------------------------------------------
# hf:// for Detectron2's PathManager
# ---------------------------------------------------------------------------------------------
class HFHubPathHandler(PathHandler):
    """``hf://<org>/<name>[@revision][/<file in the repo>]`` -> a local folder or file (read-only).

    The repo is fetched with ``hiera_mm.checkpoints``' hub logic (weights and config only) into
    the Hugging Face cache; ``force`` is ignored (the hub cache validates itself).
    """

    PREFIX = checkpoints.HF_PREFIX

    def _get_supported_prefixes(self) -> List[str]:
        return [self.PREFIX]

    def _split(self, path: str) -> tuple[str, str]:
        parts = [p for p in path[len(self.PREFIX):].split('/') if p]
        if len(parts) < 2:
            raise CheckpointError(f"'{path}' is not a hub path: write '{self.PREFIX}<org>/<name>' "
                                  f"(e.g. '{self.PREFIX}{HUB_IDS['tiny']}'), optionally "
                                  "followed by '@<revision>' and '/<file>'")
        return '/'.join(parts[:2]), '/'.join(parts[2:])

    def _get_local_path(self, path: str, force: bool = False, **kwargs: Any) -> str:
        self._check_kwargs(kwargs)
        repo_id, inner = self._split(path)
        folder = checkpoints._download_hf(repo_id)
        if not inner:
            return folder
        local = os.path.join(folder, inner)
        if not os.path.exists(local):
            raise CheckpointError(f"'{path}': the snapshot of '{repo_id}' has no '{inner}' "
                                  f'(it has: {", ".join(sorted(os.listdir(folder)))})')
        return local

    def _open(self, path: str, mode: str = 'r', buffering: int = -1, **kwargs: Any):
        self._check_kwargs(kwargs)
        if any(flag in mode for flag in 'wax+'):
            raise ValueError(f"'{path}': hub paths are read-only (mode {mode!r})")
        return open(self._get_local_path(path), mode, buffering=buffering)

    def _probe(self, path: str) -> Optional[str]:
        try:
            return self._get_local_path(path)
        except CheckpointError:
            return None

    def _exists(self, path: str, **kwargs: Any) -> bool:
        self._check_kwargs(kwargs)
        return self._probe(path) is not None

    def _isfile(self, path: str, **kwargs: Any) -> bool:
        self._check_kwargs(kwargs)
        local = self._probe(path)
        return local is not None and os.path.isfile(local)

    def _isdir(self, path: str, **kwargs: Any) -> bool:
        self._check_kwargs(kwargs)
        local = self._probe(path)
        return local is not None and os.path.isdir(local)

    def _ls(self, path: str, **kwargs: Any) -> List[str]:
        self._check_kwargs(kwargs)
        return sorted(os.listdir(self._get_local_path(path)))


def register_hf_path_handler(path_manager=PathManager) -> None:
    """Register ``HFHubPathHandler`` with a PathManager (Detectron2's by default); idempotent."""
    if not any(isinstance(h, HFHubPathHandler) for h in path_manager._path_handlers.values()):
        path_manager.register_handler(HFHubPathHandler())


# ---------------------------------------------------------------------------------------------
# The checkpointer
# ---------------------------------------------------------------------------------------------
_OWN_TRUNK_KEY = re.compile(r'^(.*?)trunk\.patch_embed\.proj\.weight$')


class HieraCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that also loads Hiera backbone checkpoints of any layout.

    Same arguments as ``DetectionCheckpointer(model, save_dir='', *, save_to_disk=None,
    **checkpointables)``; saving is unchanged. See the module docstring for which checkpoint is
    loaded how.
    """

    def __init__(self, model, save_dir: str = '', *, save_to_disk: Optional[bool] = None,
                 **checkpointables):
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        register_hf_path_handler(self.path_manager)
        self._source: Optional[str] = None

    # ------------------------------------------------------------------------------------------
    def load(self, path: str, *args, **kwargs) -> Dict[str, Any]:
        if not path:
            return super().load(path, *args, **kwargs)
        self._source = str(path)
        try:
            local = self.path_manager.get_local_path(str(path).split('?', 1)[0])
            if os.path.isdir(local):
                # A save_pretrained folder or hub snapshot: weights only, read in one go.
                logger.info(f'[HieraCheckpointer] Loading Hiera weights from {path} ...')
                checkpoint = {'model': checkpoints.read_state_dict(local)}
                incompatible = self._load_model(checkpoint)
                self._log_incompatible_keys(incompatible)
                return checkpoint
            return super().load(path, *args, **kwargs)
        finally:
            self._source = None

    def _load_file(self, filename: str) -> Dict[str, Any]:
        if filename.endswith('.safetensors'):
            return {'model': checkpoints.read_state_dict(filename)}
        return super()._load_file(filename)

    # ------------------------------------------------------------------------------------------
    def _hiera_modules(self) -> list[tuple[str, HieraStages]]:
        return [(name, m) for name, m in self.model.named_modules() if isinstance(m, HieraStages)]

    def _is_detector_checkpoint(self, checkpoint: dict) -> bool:
        if checkpoint.get('matching_heuristics', False):
            return True
        state = checkpoint.get('model')
        if not isinstance(state, dict):
            return True  # not ours to judge: Detectron2 reports it
        own = self.model.state_dict()
        return any(strip_ddp_prefix(k) in own for k in state)

    @staticmethod
    def _backbone_state(state: dict) -> tuple[Optional[dict], list]:
        """(state dict ``HieraStages.load_pretrained_state`` understands or None, keys cut off)."""
        try:
            checkpoints.convert_state_dict(state)
            return state, []
        except CheckpointError:
            pass
        # Our own names deeper in a detector (e.g. 'backbone.bottom_up.trunk.*' of a Detectron2
        # model of another structure): cut down to 'trunk.*' / 'out_norms.*'.
        for key in state:
            bare = strip_ddp_prefix(key)
            match = _OWN_TRUNK_KEY.match(bare)
            if match:
                prefix = key[:len(key) - len(bare)] + match.group(1)
                return ({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                        [k for k in state if not k.startswith(prefix)])
        return None, []

    def _load_model(self, checkpoint: Any) -> _IncompatibleKeys:
        if not isinstance(checkpoint, dict) or self._is_detector_checkpoint(checkpoint):
            if isinstance(checkpoint, dict) and isinstance(checkpoint.get('model'), dict):
                self._fit_pos_embeds(checkpoint['model'])
            return super()._load_model(checkpoint)
        state, cut = self._backbone_state(checkpoint['model'])
        if state is None:  # not a Hiera checkpoint: Detectron2's behaviour (and its warnings)
            return super()._load_model(checkpoint)
        checkpoint.pop('model')
        modules = self._hiera_modules()
        if not modules:
            raise CheckpointError(
                f"'{self._source}' is a Hiera backbone checkpoint, but the model "
                f'({type(self.model).__name__}) has no Hiera backbone (HieraStages module) to load '
                'it into')
        source = self._source or '<checkpoint>'
        loaded, dropped = set(), []
        for name, module in modules:
            report = module.load_pretrained_state(state, source)
            logger.info(f"HieraCheckpointer: {name or 'model'} ({type(module).__name__}): "
                        f'{report.summary()}')
            prefix = name + '.' if name else ''
            missing_norms = tuple(prefix + n + '.' for n in report.newly_initialised)
            loaded.update(prefix + k for k in module.state_dict()
                          if not (prefix + k).startswith(missing_norms))
            dropped = report.dropped
        buffers = dict(self.model.named_buffers(recurse=False))
        missing = [k for k in self.model.state_dict() if k not in loaded
                   and not (k in ('pixel_mean', 'pixel_std') and k in buffers)]
        return _IncompatibleKeys(missing_keys=missing, unexpected_keys=cut + list(dropped),
                                 incorrect_shapes=[])

    def _fit_pos_embeds(self, state: dict) -> None:
        """A detector checkpoint whose Hiera was pretrained on another grid: give the model's
        position embedding that grid (same Parameter object) so it loads instead of being
        skipped as a shape mismatch."""
        pos_embeds = {strip_ddp_prefix(k): v for k, v in state.items() if k.endswith('pos_embed')}
        for name, module in self._hiera_modules():
            value = pos_embeds.get((name + '.' if name else '') + 'trunk.pos_embed')
            own = module.trunk.pos_embed
            if (torch.is_tensor(value) and value.ndim == own.ndim and value.shape != own.shape
                    and value.shape[:2] == own.shape[:2]):
                own.data = own.new_empty(value.shape)
