"""``HieraBackbone`` for Detectron2: ``HieraStages`` as a ``detectron2.modeling.Backbone``.

Feature names: stage ``i`` of ``out_indices`` (0-based) is emitted as ``'stage{i + 1}'``:

=========  ======  ==========================  ====================
name       stride  channels (tiny / base_plus)  out_indices entry
=========  ======  ==========================  ====================
stage1     4       96 / 112                     0
stage2     8       192 / 224                    1
stage3     16      384 / 448                    2
stage4     32      768 / 896                    3
=========  ======  ==========================  ====================

(channels are ``embed_dim * 2 ** i``). A LazyConfig uses it as FPN's bottom-up network::

    from detectron2.config import LazyCall as L
    from detectron2.modeling import FPN
    from detectron2.modeling.backbone.fpn import LastLevelMaxPool
    from hiera_mm.detectron2 import HieraBackbone

    model.backbone = L(FPN)(
        bottom_up=L(HieraBackbone)(arch='tiny', drop_path_rate=0.1),
        in_features=['stage1', 'stage2', 'stage3', 'stage4'],
        out_channels=256, top_block=L(LastLevelMaxPool)(), square_pad=0)

Padding: ``size_divisibility`` is 32 and ``padding_constraints`` is
``{'size_divisibility': 32, 'square_size': square_pad}``. Note that Detectron2's ``FPN`` reports its
own ``padding_constraints`` (``{'square_size': FPN.square_pad}``) and not those of its bottom-up
network, so a large-scale-jitter config that pads to 1024x1024 sets ``square_pad=1024`` on the FPN
(as ViTDet's configs do) and may set it here too for a bare backbone. Inputs of any size work
regardless: the backbone pads bottom/right to whole mask units itself.
"""
from __future__ import annotations

import logging
from typing import Dict, Optional, Sequence, Union

import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone
from omegaconf import DictConfig, ListConfig, OmegaConf

from ..models.stages import HieraStages, LoadReport

__all__ = ['HieraBackbone', 'feature_name']

# Messages go to a child of Detectron2's logger, so ``setup_logger()`` shows them.
logger = logging.getLogger('detectron2.hiera_mm')


def feature_name(index: int) -> str:
    """Detectron2 feature name of stage ``index`` (0-based, as in ``out_indices``)."""
    return f'stage{int(index) + 1}'


class HieraBackbone(HieraStages, Backbone):
    """Hiera as a Detectron2 backbone: a dict of NCHW stage maps ``'stage1'`` .. ``'stage4'``.

    Takes every argument of ``hiera_mm.models.HieraStages`` (``arch``, ``out_indices``,
    ``out_norm``, ``frozen_stages``, ``drop_path_rate``, ``with_cp``, ``attention``,
    ``global_blocks``; see there) plus:

    Args:
        square_pad (int): if > 0, Detectron2 pads every batch to this square size (large-scale
            jitter recipes use 1024); reported in ``padding_constraints``. 0 (default): pad each
            batch to a multiple of 32 only.

    Pretrained weights are loaded by ``hiera_mm.detectron2.HieraCheckpointer`` (from
    ``train.init_checkpoint`` / ``MODEL.WEIGHTS``) or directly with ``load_pretrained(source)``.
    The parameter names (``trunk.*``, ``out_norms.stage{s}.*``) are those of the OpenMMLab
    backbone, so the same state dict fits both.
    """

    def __init__(self, arch: Union[str, dict] = 'tiny', out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_norm: bool = True, frozen_stages: int = -1, drop_path_rate: float = 0.0,
                 with_cp: bool = False, attention: str = 'exact',
                 global_blocks: Optional[Sequence[int]] = None, square_pad: int = 0):
        if isinstance(square_pad, bool) or not isinstance(square_pad, int) or square_pad < 0:
            raise ValueError(f'square_pad must be an int >= 0 (0 = no square padding, e.g. 1024 '
                             f'for large-scale jitter), got {square_pad!r}')
        # LazyConfig passes dicts and lists as omegaconf containers: make them plain.
        arch, out_indices, global_blocks = (
            OmegaConf.to_container(v, resolve=True) if isinstance(v, (DictConfig, ListConfig))
            else v for v in (arch, out_indices, global_blocks))
        # HieraStages' cooperative super().__init__() runs Backbone's (and nn.Module's).
        super().__init__(arch=arch, out_indices=out_indices, out_norm=out_norm,
                         frozen_stages=frozen_stages, drop_path_rate=drop_path_rate,
                         with_cp=with_cp, attention=attention, global_blocks=global_blocks)
        if square_pad and square_pad % self.size_divisibility:
            raise ValueError(f'square_pad={square_pad} must be a multiple of the backbone\'s '
                             f'size_divisibility {self.size_divisibility} (e.g. 1024)')
        self.square_pad = square_pad
        self._out_features = [feature_name(i) for i in self.out_indices]
        self._out_feature_channels = dict(zip(self._out_features, self.out_channels))
        self._out_feature_strides = dict(zip(self._out_features, self.out_strides))

    # ------------------------------------------------------------------------------------------
    @property
    def size_divisibility(self) -> int:
        """The largest stride (32 for four stages): FPN's top-down sums need whole grids."""
        return self.trunk.patch_stride * 2 ** (len(self.trunk.depths) - 1)

    @property
    def padding_constraints(self) -> Dict[str, int]:
        return {'size_divisibility': self.size_divisibility, 'square_size': self.square_pad}

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {name: ShapeSpec(channels=self._out_feature_channels[name],
                                stride=self._out_feature_strides[name])
                for name in self._out_features}

    # ------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(B, 3, H, W) normalised images -> ``{'stage{s}': (B, C_s, H_s, W_s)}``.

        Maps cover the input padded to whole mask units (32 px), as Detectron2's padded batches
        already are.
        """
        return dict(zip(self._out_features, super().forward(x)))

    def load_pretrained(self, source: str) -> LoadReport:
        """Load trunk weights from any layout of ``hiera_mm.checkpoints``; log the report."""
        report = super().load_pretrained(source)
        logger.info(f'HieraBackbone: {report.summary()}')
        return report
