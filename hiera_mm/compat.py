"""Narrow fixes for the pinned stack (mmengine 0.10.7, mmdet 3.3.0, torch >= 2.6).

Nothing here edits installed files or replaces library functions; each fix says when it can go.
"""
from __future__ import annotations

import os
import subprocess

import torch
import torch.distributed as dist


def allow_mmengine_checkpoint_types() -> None:
    """Let ``torch.load(weights_only=True)`` read mmengine training checkpoints.

    torch >= 2.6 unpickles only allow-listed types by default; mmengine 0.10.7 saves its message
    hub (HistoryBuffer with numpy arrays) and config metadata into every checkpoint and loads them
    with the default, so resuming fails. We allow-list exactly those types instead of turning the
    safety off. Can go once mmengine saves plain tensors/dicts or passes ``weights_only`` itself.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4: no allow-list, and loading was unrestricted by default
        return
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    numpy_types = [np.ndarray, np.dtype]
    reconstruct = getattr(getattr(np, '_core', None), 'multiarray', None)
    for mod in (reconstruct, getattr(getattr(np, 'core', None), 'multiarray', None)):
        if mod is not None and hasattr(mod, '_reconstruct'):
            numpy_types.append(mod._reconstruct)
        if mod is not None and hasattr(mod, 'scalar'):
            numpy_types.append(mod.scalar)
    # numpy >= 1.25 pickles dtypes through their classes (np.dtypes.Float64DType, ...)
    numpy_types += [getattr(np.dtypes, n) for n in dir(getattr(np, 'dtypes', object()))
                    if n.endswith('DType')]
    add([HistoryBuffer, *numpy_types])


def prepare_distributed(cfg, launcher: str) -> None:
    """Make mmengine's ``pytorch`` / ``slurm`` launchers work without CUDA (gloo backend).

    mmengine 0.10.7 calls ``torch.cuda.set_device`` while initialising the process group and
    passes ``device_ids=[LOCAL_RANK]``, which torch's DDP rejects for CPU modules. On a machine
    without CUDA we initialise the group ourselves (the Runner then skips its own init) and
    build the DDP wrapper with ``device_ids=None``. With CUDA this does nothing. Can go once
    mmengine handles CPU-only distributed runs.
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
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False)))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


allow_mmengine_checkpoint_types()
