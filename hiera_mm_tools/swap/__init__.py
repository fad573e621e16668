"""The swap planners behind ``tools/swap_backbone.py``: write a config that inherits an
MMDetection or MMSegmentation config and puts a Hiera backbone in it.

What every framework's config gets lives here (mmengine only, no framework imported):
``probe`` (build the original backbone, run a small image through it, read the stride and width
of each output it hands on), ``analyse`` (the base config's model and readers), ``literals``
(writing Python values), ``paramwise`` (mmengine's custom_keys rules), ``optimizer`` (AdamW by
``LR_RULE``, paramwise_cfg merged), ``hiera_backbone`` (the backbone entry, weights), ``changes``
(backbone, normalisation, imports, hooks, load_from) and ``render`` (the text). Each framework's
planner composes these with its own: ``hiera_mm_tools.swap.mmdet`` (necks, padding) and
``hiera_mm_tools.swap.mmseg`` (decode / auxiliary heads, test-time padding).
"""
from .changes import GENERATOR, RUN_HOOKS, SwapPlan
from .optimizer import LR_RULE


def planner(config: str, cfg=None):
    """``plan_swap`` of the framework ``config`` is written for (``framework_of``); the
    MMSegmentation planner imports nothing of MMDetection."""
    from ..frameworks import framework_of

    if framework_of(config, cfg) == 'mmseg':
        from .mmseg import plan_swap
    else:
        from .mmdet import plan_swap
    return plan_swap


__all__ = ['SwapPlan', 'GENERATOR', 'RUN_HOOKS', 'LR_RULE', 'planner']
