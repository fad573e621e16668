"""Hiera for Detectron2: backbone, pretrained weights, layer-wise lr decay, yacs configs.

Importing this package registers the ``hf://`` path handler with Detectron2's ``PathManager`` and
the backbone builders (``build_hiera_backbone``, ``build_hiera_fpn_backbone``,
``build_retinanet_hiera_fpn_backbone``) in ``BACKBONE_REGISTRY``. It needs torch, Detectron2 and
the hiera_mm core, nothing of the OpenMMLab stack.
"""
from ..checkpoints import CheckpointError
from .backbone import HieraBackbone, feature_name
from .checkpoint import HFHubPathHandler, HieraCheckpointer, register_hf_path_handler
from .config import (HieraCfgNode, add_hiera_config, build_hiera_backbone,
                     build_hiera_fpn_backbone, build_retinanet_hiera_fpn_backbone, get_hiera_cfg)
from .lr_decay import get_hiera_lr_decay_rate, hiera_depths

register_hf_path_handler()

__all__ = ['CheckpointError', 'HFHubPathHandler', 'HieraBackbone', 'HieraCfgNode',
           'HieraCheckpointer', 'add_hiera_config', 'build_hiera_backbone',
           'build_hiera_fpn_backbone', 'build_retinanet_hiera_fpn_backbone', 'feature_name',
           'get_hiera_cfg', 'get_hiera_lr_decay_rate', 'hiera_depths', 'register_hf_path_handler']
