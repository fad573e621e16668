"""The HieraBackbone the new config states: default weights and drop-path rate per arch, stage
widths, and the backbone entry itself."""
from __future__ import annotations

from typing import Optional

from ...archs import ARCH_SETTINGS
from .literals import Code

HUB_CHECKPOINTS = {size: f"hf://facebook/hiera-{size.replace('_', '-')}-224-hf"
                   for size in ('tiny', 'small', 'base', 'base_plus', 'large', 'huge')}
# as this project's configs; SAM2 trunks and timm's abswin models as their size
DEFAULT_DROP_PATH = {'tiny': 0.1, 'small': 0.15, 'base': 0.2, 'base_plus': 0.2, 'large': 0.4,
                     'huge': 0.5}
HIERA_SIZE_DIVISOR = 32  # patch stride 4 x mask unit 8: Hiera pads inputs to multiples of this


def weights_and_drop_path(arch: str, checkpoint: Optional[str],
                          drop_path_rate: Optional[float]) -> tuple:
    """(checkpoint, drop_path_rate), each the arch's default where not given; SAM2 trunks and
    timm's abswin models have no default checkpoint."""
    if arch not in ARCH_SETTINGS:
        raise ValueError(f"unknown Hiera arch '{arch}'; choose one of {sorted(ARCH_SETTINGS)}")
    size = arch.split('_', 1)[1] if arch.startswith(('sam2', 'abswin')) else arch
    if checkpoint is None:
        if arch.startswith('abswin'):
            raise ValueError(
                f"arch '{arch}' is timm's hiera_{size}_abswin_256: there is no default checkpoint "
                "for it; pass --checkpoint with timm's file (e.g. the model.safetensors of "
                f'timm/hiera_{size}_abswin_256.<tag>)')
        if arch not in HUB_CHECKPOINTS:
            raise ValueError(
                f"arch '{arch}' is a SAM2 trunk: there is no Hiera hub checkpoint for it; pass "
                f'--checkpoint with the SAM2 file (e.g. checkpoints/sam2.1_hiera_{size}.pt)')
        checkpoint = HUB_CHECKPOINTS[arch]
    if drop_path_rate is None:
        drop_path_rate = DEFAULT_DROP_PATH[size]
    return checkpoint, drop_path_rate


def stage_widths(arch: str) -> list:
    """Channels of Hiera's stages (``embed_dim * 2**i``)."""
    settings = ARCH_SETTINGS[arch]
    return [int(settings['embed_dim'] * 2 ** i) for i in range(len(settings['depths']))]


def backbone_entry(arch: str, stages: tuple, drop_path_rate: float) -> dict:
    """``model.backbone`` of the new config: replaces the old one (``_delete_``), emits only the
    stages read (an unread stage would leave its output norm without gradient, which DDP
    rejects) and loads the top-level ``pretrained``."""
    return {'_delete_': True, 'type': 'HieraBackbone', 'arch': arch,
            'out_indices': tuple(stages), 'out_norm': True, 'frozen_stages': -1,
            'drop_path_rate': drop_path_rate, 'with_cp': False, 'attention': 'exact',
            'init_cfg': {'type': 'Pretrained', 'checkpoint': Code('pretrained')}}
