"""MMDetection 3.x integration: importing this package registers hiera_mm's modules.

* ``HieraBackbone`` in ``mmdet.registry.MODELS``;
* ``HieraLayerDecayOptimizerConstructor`` in ``OPTIM_WRAPPER_CONSTRUCTORS``;
* ``FiniteLossHook``, ``AtomicCheckpointHook`` and ``TrustRunCheckpointsHook`` in ``HOOKS``;
* on torch >= 2.6 only, mmengine's local checkpoint loader that reads the run's own training
  checkpoints (``hiera_mm.openmmlab.compat``).

The classes live in ``hiera_mm.openmmlab`` (shared with ``hiera_mm.mmseg``); this package adds
the detection-only parts (the swap tool's planner, the Mask R-CNN benchmark step).
"""
from mmdet.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from ..openmmlab import (AtomicCheckpointHook, FiniteLossHook, HieraBackbone,
                         HieraLayerDecayOptimizerConstructor, TrustRunCheckpointsHook, compat,
                         get_hiera_layer_id, register_into)

register_into(models=MODELS, optim_wrapper_constructors=OPTIM_WRAPPER_CONSTRUCTORS, hooks=HOOKS)

__all__ = ['AtomicCheckpointHook', 'FiniteLossHook', 'HieraBackbone',
           'HieraLayerDecayOptimizerConstructor', 'TrustRunCheckpointsHook', 'compat',
           'get_hiera_layer_id']
