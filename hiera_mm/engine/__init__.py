"""Training-engine components of hiera_mm (optimizer constructors, hooks)."""
from .hooks import AtomicCheckpointHook, FiniteLossHook
from .layer_decay import HieraLayerDecayOptimizerConstructor, get_hiera_layer_id

__all__ = ['AtomicCheckpointHook', 'FiniteLossHook', 'HieraLayerDecayOptimizerConstructor',
           'get_hiera_layer_id']
