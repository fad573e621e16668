"""hiera_mm: Hiera (Ryali et al., ICML 2023) as a detection and segmentation backbone.

The core is plain torch: the model (``hiera_mm.models``) and the checkpoint code
(``hiera_mm.checkpoints``). Each framework has its own integration package, imported only by
that framework's users:

* ``hiera_mm.mmdet``: registers ``HieraBackbone``, the layer-decay optimizer constructor and the
  hooks into MMDetection's registries. Configs say
  ``custom_imports = dict(imports=['hiera_mm.mmdet'], allow_failed_imports=False)``.
* ``hiera_mm.mmseg``: the same into MMSegmentation's registries. Configs say
  ``custom_imports = dict(imports=['mmseg', 'hiera_mm.mmseg'], allow_failed_imports=False)``.
* ``hiera_mm.detectron2``: a Detectron2 ``Backbone``, its checkpointer and lr-decay factor, the
  ``hf://`` path handler and the yacs backbone builders.

``hiera_mm.openmmlab`` holds what the two OpenMMLab integrations share (on mmengine alone).

Detection configs written for earlier releases name ``hiera_mm`` itself in ``custom_imports``;
they keep working because importing this package from a process that has already loaded mmengine
or mmdet (as mmengine's config loader has) registers the mmdet integration too, unless the
process is a segmentation one (mmseg imported: mmseg's tools import it before reading a config,
and hiera_mm's mmseg configs import it before ``hiera_mm.mmseg``), which must not get
``hiera_mm.mmdet``. Elsewhere, importing ``hiera_mm`` imports nothing beyond torch.
"""
import importlib.util
import sys

__version__ = '0.2.0'
__all__ = ['__version__']


def _register_with_loaded_mm_stack() -> None:
    if not ({'mmengine', 'mmdet'} & sys.modules.keys()) or 'mmseg' in sys.modules:
        return
    try:
        mmdet_installed = importlib.util.find_spec('mmdet') is not None
    except (ImportError, ValueError):  # blocked or half-imported: treat as absent
        mmdet_installed = False
    if mmdet_installed:
        from . import mmdet  # noqa: F401  (errors surface: a broken mm stack must not go unnoticed)


_register_with_loaded_mm_stack()
