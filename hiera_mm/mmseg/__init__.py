"""MMSegmentation 1.x integration: importing this package registers hiera_mm's modules.

* ``HieraBackbone`` in ``mmseg.registry.MODELS``;
* ``HieraLayerDecayOptimizerConstructor`` in ``OPTIM_WRAPPER_CONSTRUCTORS``;
* ``FiniteLossHook``, ``AtomicCheckpointHook`` and ``TrustRunCheckpointsHook`` in ``HOOKS``.

The same classes as ``hiera_mm.mmdet`` registers (they live in ``hiera_mm.openmmlab``); nothing
here imports mmdet. Configs say
``custom_imports = dict(imports=['mmseg', 'hiera_mm.mmseg'], allow_failed_imports=False)``:
with mmseg imported first, the package-level rule of ``hiera_mm`` for old detection configs
(which registers ``hiera_mm.mmdet`` in a process that has loaded mmengine) stays out of the way
even where nothing had imported mmseg before the config was read (``Runner.from_cfg`` in a plain
mmengine script; mmseg's and our tools import mmseg first anyway).
"""
from mmseg.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from ..openmmlab import (AtomicCheckpointHook, FiniteLossHook, HieraBackbone,
                         HieraLayerDecayOptimizerConstructor, TrustRunCheckpointsHook, compat,
                         register_into)

register_into(models=MODELS, optim_wrapper_constructors=OPTIM_WRAPPER_CONSTRUCTORS, hooks=HOOKS)

__all__ = ['AtomicCheckpointHook', 'FiniteLossHook', 'HieraBackbone',
           'HieraLayerDecayOptimizerConstructor', 'TrustRunCheckpointsHook', 'compat']
