"""Training-engine components of hiera_mm (optimizer constructors, hooks)."""
from .layer_decay import HieraLayerDecayOptimizerConstructor, get_hiera_layer_id

__all__ = ['HieraLayerDecayOptimizerConstructor', 'get_hiera_layer_id']
