"""Put a Hiera backbone into any MMDetection config: writes a config that inherits the given one.

``swap_backbone(config, arch)`` returns the text of a new config whose ``_base_`` is ``config``
(a path or an ``mmdet::`` string) and which states only what differs; ``plan_swap`` also gives
the decisions, one line each, which head the written config; ``tools/swap_backbone.py`` is the
command line around them. What changes (the rules are in the docstrings of the functions named):

* ``custom_imports`` gains ``hiera_mm.mmdet``; ``custom_hooks`` gain ``FiniteLossHook`` and
  ``TrustRunCheckpointsHook``; mmengine's ``CheckpointHook`` becomes ``AtomicCheckpointHook``
  (``changes.imports_entry``, ``changes.hooks_change``, ``changes.checkpoint_hook_change``).
* ``model.backbone``: ``HieraBackbone`` of the arch with its weights and drop-path rate
  (``hiera_backbone``), emitting Hiera's stages at the strides of the maps that the backbone's
  reader (the first neck, or a neckless ``panoptic_head``) reads, found by running the original
  backbone (``probe.probe_backbone``, ``necks.find_consumer``, ``analyse.stages_read``); the
  reader's ``in_channels`` become Hiera's widths (``changes.reader_change``). Configs that cannot
  be mapped safely are refused with a ``ValueError`` that says why.
* ``model.data_preprocessor``: Hiera's normalisation and padding (``plan.preprocessor_change``).
* ``optim_wrapper``: AdamW by ``LR_RULE``, ``paramwise_cfg`` merged with no weight decay on
  Hiera's norms and position embeddings (``optimizer``, ``paramwise``).
* ``load_from`` is reset; the top-level ``pretrained`` names the Hiera checkpoint.

Here: ``necks`` (MMDetection's necks and who reads the backbone) and ``plan`` (MMDetection's
changes, composed); the framework-neutral modules are in ``hiera_mm_tools.swap``.
"""
from ..optimizer import LR_RULE
from .plan import SwapPlan, plan_swap, swap_backbone

__all__ = ['swap_backbone', 'plan_swap', 'SwapPlan', 'LR_RULE']
