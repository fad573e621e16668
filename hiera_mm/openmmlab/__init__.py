"""What MMDetection and MMSegmentation share: one ``HieraBackbone``, the layer-decay constructor,
the hooks and the stack fixes, all on mmengine alone. ``hiera_mm.mmdet`` and ``hiera_mm.mmseg``
register them into their framework's registries; this package registers nothing itself."""
from . import compat  # noqa: F401  (first: the loader must be in place before a run loads anything)
from .backbone import HieraBackbone
from .hooks import AtomicCheckpointHook, FiniteLossHook, TrustRunCheckpointsHook
from .layer_decay import HieraLayerDecayOptimizerConstructor, get_hiera_layer_id

HOOK_CLASSES = (AtomicCheckpointHook, FiniteLossHook, TrustRunCheckpointsHook)


def register_into(*, models, optim_wrapper_constructors, hooks) -> None:
    """Register the backbone, the constructor and the hooks into one framework's registries."""
    models.register_module(module=HieraBackbone)
    optim_wrapper_constructors.register_module(module=HieraLayerDecayOptimizerConstructor)
    for hook in HOOK_CLASSES:
        hooks.register_module(module=hook)


__all__ = ['AtomicCheckpointHook', 'FiniteLossHook', 'HieraBackbone',
           'HieraLayerDecayOptimizerConstructor', 'TrustRunCheckpointsHook', 'get_hiera_layer_id',
           'register_into']
