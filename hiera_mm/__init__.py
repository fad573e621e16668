"""hiera_mm: Hiera (Ryali et al., ICML 2023) as a detection and segmentation backbone.

The core is plain torch: the arch facts (``hiera_mm.archs``), the model (``hiera_mm.models``)
and the checkpoint code (``hiera_mm.checkpoints``). Each framework has its own integration,
which registers hiera_mm into that framework when imported; importing ``hiera_mm`` itself
registers nothing:

* ``hiera_mm.mmdet``: MMDetection 3.x, ``custom_imports = dict(imports=['hiera_mm.mmdet'])``;
* ``hiera_mm.mmseg``: MMSegmentation 1.x, ``custom_imports = dict(imports=['hiera_mm.mmseg'])``;
* ``hiera_mm.detectron2``: a Detectron2 ``Backbone``, its checkpointer and lr-decay factor, the
  ``hf://`` path handler and the yacs backbone builders.

``hiera_mm.openmmlab`` holds what the two OpenMMLab integrations share (on mmengine alone).
"""
__version__ = '0.2.0'
__all__ = ['__version__']
