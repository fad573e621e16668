"""hiera_mm: Hiera as a detection backbone for MMDetection 3.x.

Importing the package registers everything into mmdet's registries: ``HieraBackbone`` (MODELS)
and ``HieraLayerDecayOptimizerConstructor`` (OPTIM_WRAPPER_CONSTRUCTORS); it also applies the
narrowly scoped stack fixes of ``hiera_mm.compat``. Configs say
``custom_imports = dict(imports=['hiera_mm'], allow_failed_imports=False)``.

The Hiera model alone (plain torch) is ``hiera_mm/models/hiera.py``.
"""
from . import compat  # noqa: F401  (first: the fixes must be in place before training starts)
from .engine import HieraLayerDecayOptimizerConstructor
from .models import HieraBackbone

__version__ = '0.1.0'
__all__ = ['HieraBackbone', 'HieraLayerDecayOptimizerConstructor', '__version__']
