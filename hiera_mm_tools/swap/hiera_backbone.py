"""The HieraBackbone the new config states: its weights and drop-path rate (the arch's defaults
from ``hiera_mm.archs`` where not given) and the backbone entry itself."""
from __future__ import annotations

from typing import Optional

from hiera_mm.archs import HUB_IDS, check_arch, default_drop_path, model_size

from .literals import Code


def weights_and_drop_path(arch: str, checkpoint: Optional[str],
                          drop_path_rate: Optional[float]) -> tuple:
    """(checkpoint, drop_path_rate), each the arch's default where not given: the
    ``hf://`` id of its hub checkpoint and the drop path of its size. SAM2 trunks and timm's
    abswin models have no default checkpoint."""
    check_arch(arch)
    size = model_size(arch)
    if checkpoint is None:
        if arch.startswith('abswin'):
            raise ValueError(
                f"arch '{arch}' is timm's hiera_{size}_abswin_256: there is no default checkpoint "
                "for it; pass --checkpoint with timm's file (e.g. the model.safetensors of "
                f'timm/hiera_{size}_abswin_256.<tag>)')
        if arch not in HUB_IDS:
            raise ValueError(
                f"arch '{arch}' is a SAM2 trunk: there is no Hiera hub checkpoint for it; pass "
                f'--checkpoint with the SAM2 file (e.g. checkpoints/sam2.1_hiera_{size}.pt)')
        checkpoint = f'hf://{HUB_IDS[arch]}'
    if drop_path_rate is None:
        drop_path_rate = default_drop_path(arch)
    return checkpoint, drop_path_rate


def backbone_entry(arch: str, stages: tuple, drop_path_rate: float) -> dict:
    """``model.backbone`` of the new config: replaces the old one (``_delete_``), emits only the
    stages read (an unread stage would leave its output norm without gradient, which DDP
    rejects) and loads the top-level ``pretrained``."""
    return {'_delete_': True, 'type': 'HieraBackbone', 'arch': arch,
            'out_indices': tuple(stages), 'out_norm': True, 'frozen_stages': -1,
            'drop_path_rate': drop_path_rate, 'with_cp': False, 'attention': 'exact',
            'init_cfg': {'type': 'Pretrained', 'checkpoint': Code('pretrained')}}
