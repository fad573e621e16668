"""What MMDetection and MMSegmentation share, on mmengine alone: one ``HieraBackbone``, the
layer-decay constructor, the hooks and the mmengine fixes (``checkpoint_loader``,
``cpu_launch``). ``hiera_mm.mmdet`` and ``hiera_mm.mmseg`` register them into their framework's
registries; importing this package registers and patches nothing."""
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


def check_custom_imports(cfg, framework: str = 'mmdet') -> None:
    """Refuse a config whose ``custom_imports`` name the bare ``hiera_mm`` package and none of
    its integrations (configs of hiera_mm 0.1): importing ``hiera_mm`` registers nothing, so
    stock tools fail to build the model with a registry error that names no fix."""
    imports = (cfg.get('custom_imports') or {}).get('imports', [])
    imports = [imports] if isinstance(imports, str) else list(imports)
    if 'hiera_mm' in imports and not {'hiera_mm.mmdet', 'hiera_mm.mmseg'} & set(imports):
        fix = f'hiera_mm.{framework}'
        raise ValueError(
            f"{getattr(cfg, 'filename', None) or 'the config'}: custom_imports names 'hiera_mm', "
            "which registers nothing into mmdet or mmseg; name the integration instead: "
            f"custom_imports = dict(imports=['{fix}'], allow_failed_imports=False)")


__all__ = ['AtomicCheckpointHook', 'FiniteLossHook', 'HieraBackbone',
           'HieraLayerDecayOptimizerConstructor', 'TrustRunCheckpointsHook',
           'check_custom_imports', 'get_hiera_layer_id', 'register_into']
