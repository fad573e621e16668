"""``HieraBackbone`` for OpenMMLab (MMDetection, MMSegmentation): ``HieraStages`` with mmengine's
``init_cfg``. Registered by ``hiera_mm.mmdet`` and ``hiera_mm.mmseg``, one class for both."""
from __future__ import annotations

import copy
from typing import Optional, Sequence, Union

from mmengine.logging import print_log
from mmengine.model import BaseModule

from ..archs import HUB_IDS
from ..models.stages import HieraStages


class HieraBackbone(HieraStages, BaseModule):
    """Hiera as a detection / segmentation backbone: stage maps at strides 4, 8, 16, 32 (NCHW).

    Takes every argument of ``hiera_mm.models.HieraStages`` (arch, out_indices, out_norm,
    frozen_stages, drop_path_rate, with_cp, attention, global_blocks) plus:

    Args:
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)`` with an
            ``hf://`` hub id, a save_pretrained folder or a .safetensors/.bin/.pth file in any
            layout of ``hiera_mm.checkpoints``.
    """

    def __init__(self, arch: Union[str, dict] = 'tiny', out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_norm: bool = True, frozen_stages: int = -1, drop_path_rate: float = 0.0,
                 with_cp: bool = False, attention: str = 'exact',
                 global_blocks: Optional[Sequence[int]] = None, init_cfg: Optional[dict] = None):
        # HieraStages' cooperative super().__init__() runs BaseModule's (without an init_cfg).
        super().__init__(arch=arch, out_indices=out_indices, out_norm=out_norm,
                         frozen_stages=frozen_stages, drop_path_rate=drop_path_rate,
                         with_cp=with_cp, attention=attention, global_blocks=global_blocks)
        self.init_cfg = copy.deepcopy(init_cfg)

    def init_weights(self) -> None:
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            if 'checkpoint' not in cfg:
                raise ValueError("init_cfg of type 'Pretrained' needs a 'checkpoint' "
                                 f"(e.g. 'hf://{HUB_IDS['tiny']}')")
            self.load_pretrained(cfg['checkpoint'])
            self._is_init = True
            return
        self.trunk.init_weights()
        super().init_weights()

    def load_pretrained(self, source: str):
        """Load trunk weights from any supported layout; log what was mapped, dropped, missing."""
        report = super().load_pretrained(source)
        print_log(f'HieraBackbone: {report.summary()}', logger='current')
        return report


__all__ = ['HieraBackbone']
