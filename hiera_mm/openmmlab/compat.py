"""Narrow fixes for the supported stack (mmengine 0.10 under mmdet 3.3 and mmseg 1.2), each applied only where needed.

Nothing here edits installed files; each fix says when it applies and when it can go.
"""
from __future__ import annotations

import os
import subprocess

import torch
import torch.distributed as dist


_TRUSTED_CHECKPOINT_LOCATIONS: set = set()


def trust_checkpoint_location(path) -> None:
    """Allow full (pickled) mmengine training checkpoints from ``path`` (a file or a folder)."""
    if path:
        _TRUSTED_CHECKPOINT_LOCATIONS.add(os.path.realpath(os.path.expanduser(str(path))))


def _is_trusted(filename: str) -> bool:
    real = os.path.realpath(filename)
    return any(real == loc or real.startswith(loc + os.sep) for loc in _TRUSTED_CHECKPOINT_LOCATIONS)


def load_local_checkpoint(filename: str, map_location=None):
    """mmengine's local checkpoint loader, safe under torch >= 2.6.

    mmengine 0.10.7 saves training checkpoints with its message hub inside (HistoryBuffer
    objects that pickle numpy arrays and ``getattr`` calls) and loads them with torch's default,
    which is ``weights_only=True`` since torch 2.6, so ``--resume`` and ``load_from`` fail.
    Unpickling arbitrary objects is only safe for files the user vouched for: we read tensors
    only, and fall back to a full load solely for files in the run's work dir or given to the run
    (``--resume PATH``, ``test.py CONFIG CHECKPOINT``, ``load_from``), which
    ``TrustRunCheckpointsHook`` trusts before anything is loaded. Can go once
    mmengine stores plain tensors and containers or passes ``weights_only`` itself.
    """
    import pickle
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


def _register_checkpoint_loader() -> None:
    """Before torch 2.6, mmengine's own loader works: leave it as it is there."""
    if not torch_loads_weights_only_by_default():
        return
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(load_local_checkpoint)


def prepare_distributed(cfg, launcher: str) -> None:
    """Make mmengine's ``pytorch`` / ``slurm`` launchers work without CUDA (gloo backend).

    mmengine 0.10.7 calls ``torch.cuda.set_device`` while initialising the process group and
    passes ``device_ids=[LOCAL_RANK]``, which torch's DDP rejects for CPU modules. On a machine
    without CUDA we initialise the group ourselves (the Runner then skips its own init) and
    build the DDP wrapper with ``device_ids=None``; SyncBN layers become BN (``sync_bn_to_bn``).
    With CUDA this does nothing. Can go once mmengine handles CPU-only distributed runs.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher == 'slurm':
        os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
        os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
        os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
        os.environ.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in os.environ:
            nodes = os.environ['SLURM_NODELIST']
            os.environ['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {nodes} | head -n1')
    elif launcher != 'pytorch':
        raise ValueError(f"launcher '{launcher}' needs CUDA here; on CPU use 'pytorch' or 'slurm'")
    sync_bn_to_bn(cfg)
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False)))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


# Norm types that build synchronised batch norms (torch's, mmcv's, detectron2-style naive ones).
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'NaiveSyncBN', 'TorchSyncBN')


def sync_bn_to_bn(cfg) -> list:
    """Turn every synchronised batch norm of ``cfg.model`` into a plain one (``type='BN'``).

    mmseg's configs (UperNet, FCN heads) use ``SyncBN``, whose forward refuses CPU tensors once a
    process group exists, so a distributed run without CUDA fails at its first step. mmengine
    reverts SyncBN itself only in single-process runs. Here each process normalises its own
    batch instead (as a single-GPU run does); the config's ``sync_bn`` option (SyncBN added by
    mmengine) is dropped for the same reason. Returns the paths of the changed norm configs.
    """
    changed = []

    def visit(node, path):
        if isinstance(node, dict):
            kind = node.get('type')
            if isinstance(kind, str) and kind.split('.')[-1] in SYNC_BN_TYPES:
                node['type'] = 'BN'
                changed.append(path)
            for key, value in node.items():
                visit(value, f'{path}.{key}')
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                visit(value, f'{path}[{i}]')

    visit(cfg.get('model'), 'model')
    if cfg.get('sync_bn') is not None:
        cfg.sync_bn = None
        changed.append('sync_bn')
    if changed:
        from mmengine.logging import print_log
        print_log('No CUDA: SyncBN -> BN (each process normalises its own batch) in '
                  + ', '.join(changed), logger='current')
    return changed


_register_checkpoint_loader()
