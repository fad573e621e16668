"""mmengine's local checkpoint loader, safe under torch >= 2.6 (``install_checkpoint_loader``).

mmengine 0.10 saves training checkpoints with its message hub inside (HistoryBuffer objects that
pickle numpy arrays and ``getattr`` calls) and loads them with torch's default, which is
``weights_only=True`` since torch 2.6, so ``--resume`` and ``load_from`` fail. The loader here
reads tensors only, and unpickles other objects solely from files the run vouched for: its work
dir and the checkpoint it was given (``TrustRunCheckpointsHook`` trusts them before anything is
loaded). Before torch 2.6 mmengine's own loader stays in place. Can go once mmengine stores plain
tensors and containers or passes ``weights_only`` itself.
"""
from __future__ import annotations

import os
import pickle

import torch

_TRUSTED_CHECKPOINT_LOCATIONS: set = set()


def trust_checkpoint_location(path) -> None:
    """Allow full (pickled) mmengine training checkpoints from ``path`` (a file or a folder)."""
    if path:
        _TRUSTED_CHECKPOINT_LOCATIONS.add(os.path.realpath(os.path.expanduser(str(path))))


def _is_trusted(filename: str) -> bool:
    real = os.path.realpath(filename)
    return any(real == loc or real.startswith(loc + os.sep) for loc in _TRUSTED_CHECKPOINT_LOCATIONS)


def load_local_checkpoint(filename: str, map_location=None):
    """Read a local checkpoint: tensors only, or everything where its location is trusted."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if not _is_trusted(filename):
            raise RuntimeError(
                f"'{filename}' holds Python objects besides tensors (an mmengine training "
                'checkpoint). hiera_mm unpickles those only from the work dir or from a path '
                'given for resuming or testing (--resume PATH, test.py CONFIG CHECKPOINT, '
                'load_from); extract the weights with '
                'tools/model_converters/convert_weights.py otherwise.') from err
    return torch.load(filename, map_location=map_location, weights_only=False)


def torch_loads_weights_only_by_default() -> bool:
    """torch >= 2.6 reads checkpoints with ``weights_only=True`` unless told otherwise."""
    major, minor = (int(part) for part in torch.__version__.split('.')[:2])
    return (major, minor) >= (2, 6)


def install_checkpoint_loader() -> None:
    """Make ``load_local_checkpoint`` mmengine's loader for local paths, on torch >= 2.6 only
    (idempotent). ``hiera_mm.mmdet`` and ``hiera_mm.mmseg`` call it when imported."""
    if not torch_loads_weights_only_by_default():
        return
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(load_local_checkpoint)
