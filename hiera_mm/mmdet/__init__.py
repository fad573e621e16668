"""MMDetection 3.x integration: importing this package registers hiera_mm's modules.

* ``HieraBackbone`` in ``mmdet.registry.MODELS``;
* ``HieraLayerDecayOptimizerConstructor`` in ``OPTIM_WRAPPER_CONSTRUCTORS``;
* ``FiniteLossHook``, ``AtomicCheckpointHook`` and ``TrustRunCheckpointsHook`` in ``HOOKS``;
* on torch >= 2.6 only, mmengine's local checkpoint loader that reads the run's own training
  checkpoints (``hiera_mm.mmdet.compat``).
"""
from . import compat  # noqa: F401  (first: the loader must be in place before a run loads anything)
from .backbone import HieraBackbone
from .hooks import AtomicCheckpointHook, FiniteLossHook, TrustRunCheckpointsHook
from .layer_decay import HieraLayerDecayOptimizerConstructor, get_hiera_layer_id

__all__ = ['AtomicCheckpointHook', 'FiniteLossHook', 'HieraBackbone',
           'HieraLayerDecayOptimizerConstructor', 'TrustRunCheckpointsHook', 'get_hiera_layer_id']
