"""What the swap tool (``tools/swap_backbone.py``) does for any OpenMMLab framework: read the
base config, state Hiera's backbone, normalisation, optimizer, imports and hooks, and write the
new config's text. Nothing here imports a framework (mmengine only); the framework's planner
composes these changes with its own: ``hiera_mm.mmdet.swap`` (detectors: necks, padding) and
``hiera_mm.mmseg.swap`` (segmentors: decode / auxiliary heads, test-time padding).

Modules: ``analyse`` (reading the base config, its framework and backbone stages), ``literals``
(writing Python values), ``paramwise`` (mmengine's custom_keys rules), ``optimizer`` (AdamW by
``LR_RULE``, paramwise_cfg merged), ``hiera_backbone`` (the backbone entry, weights, widths),
``changes`` (backbone, normalisation, imports, hooks, load_from), ``render`` (the text).
"""
from .analyse import framework_of
from .changes import GENERATOR, RUN_HOOKS, SwapPlan
from .hiera_backbone import DEFAULT_DROP_PATH, HUB_CHECKPOINTS
from .optimizer import LR_RULE

__all__ = ['framework_of', 'SwapPlan', 'GENERATOR', 'RUN_HOOKS', 'HUB_CHECKPOINTS',
           'DEFAULT_DROP_PATH', 'LR_RULE']
