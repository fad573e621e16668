"""MMDetection 3.x integration: importing this package registers hiera_mm into mmdet.

* ``HieraBackbone`` in ``mmdet.registry.MODELS``;
* ``HieraLayerDecayOptimizerConstructor`` in ``OPTIM_WRAPPER_CONSTRUCTORS``;
* ``FiniteLossHook``, ``AtomicCheckpointHook`` and ``TrustRunCheckpointsHook`` in ``HOOKS``;
* on torch >= 2.6, mmengine's local checkpoint loader that reads the run's own training
  checkpoints (``hiera_mm.openmmlab.checkpoint_loader.install_checkpoint_loader``).

Configs say ``custom_imports = dict(imports=['hiera_mm.mmdet'], allow_failed_imports=False)``.
"""
from mmdet.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from ..openmmlab import (AtomicCheckpointHook, FiniteLossHook, HieraBackbone,
                         HieraLayerDecayOptimizerConstructor, TrustRunCheckpointsHook,
                         get_hiera_layer_id, register_into)
from ..openmmlab.checkpoint_loader import install_checkpoint_loader

register_into(models=MODELS, optim_wrapper_constructors=OPTIM_WRAPPER_CONSTRUCTORS, hooks=HOOKS)
install_checkpoint_loader()

__all__ = ['AtomicCheckpointHook', 'FiniteLossHook', 'HieraBackbone',
           'HieraLayerDecayOptimizerConstructor', 'TrustRunCheckpointsHook', 'get_hiera_layer_id']
