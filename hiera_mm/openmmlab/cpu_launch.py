"""Distributed mmengine runs on machines without CUDA: a gloo process group, DDP without device
ids, and synchronised batch norms turned into plain ones (``prepare_distributed``).

mmengine 0.10 calls ``torch.cuda.set_device`` while initialising the process group and passes
``device_ids=[LOCAL_RANK]``, which torch's DDP rejects for CPU modules. With CUDA nothing here
changes anything. Can go once mmengine handles CPU-only distributed runs.
"""
from __future__ import annotations

import os
import subprocess

import torch
import torch.distributed as dist

# Norm types that build synchronised batch norms (torch's, mmcv's, detectron2-style naive ones).
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'NaiveSyncBN', 'TorchSyncBN')


def prepare_distributed(cfg, launcher: str) -> None:
    """Make mmengine's ``pytorch`` / ``slurm`` launchers work without CUDA (gloo backend).

    On a machine without CUDA: initialise the process group here (the Runner then skips its own
    init), build the DDP wrapper with ``device_ids=None`` and turn SyncBN into BN
    (``sync_bn_to_bn``). With CUDA, or with ``launcher='none'``, this does nothing.
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
