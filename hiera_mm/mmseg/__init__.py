"""MMSegmentation 1.x integration: importing this package registers hiera_mm into mmseg.

The same classes and loader fix as ``hiera_mm.mmdet`` (from ``hiera_mm.openmmlab``), into
``mmseg.registry``; nothing here imports mmdet. Configs say
``custom_imports = dict(imports=['hiera_mm.mmseg'], allow_failed_imports=False)``.
"""
from mmseg.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from ..openmmlab import (AtomicCheckpointHook, FiniteLossHook, HieraBackbone,
                         HieraLayerDecayOptimizerConstructor, TrustRunCheckpointsHook,
                         register_into)
from ..openmmlab.checkpoint_loader import install_checkpoint_loader

register_into(models=MODELS, optim_wrapper_constructors=OPTIM_WRAPPER_CONSTRUCTORS, hooks=HOOKS)
install_checkpoint_loader()

__all__ = ['AtomicCheckpointHook', 'FiniteLossHook', 'HieraBackbone',
           'HieraLayerDecayOptimizerConstructor', 'TrustRunCheckpointsHook']
