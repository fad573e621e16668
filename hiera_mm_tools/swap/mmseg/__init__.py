"""Put a Hiera backbone into an MMSegmentation config: writes a config that inherits the given one.

``swap_backbone(config, arch)`` / ``plan_swap`` as ``hiera_mm_tools.swap.mmdet``'s, for
segmentors (``mmseg::`` configs, or any whose ``default_scope`` is 'mmseg');
``tools/swap_backbone.py`` picks this planner by that. Each change is a small function giving the change and its reason;
the framework-neutral ones (probing the old backbone, backbone entry, normalisation, AdamW by
``LR_RULE``, paramwise_cfg, imports, hooks, load_from, the text) come from
``hiera_mm_tools.swap``. What is particular to segmentation:

* The backbone's readers are a neck (Semantic FPN's ``FPN``: ``neck_change``) or, without a
  neck, the decode head(s) and auxiliary head(s), each reading backbone outputs by
  ``in_index`` (``head_reads``): Hiera emits the union of the stages they read, and each head
  gets Hiera's widths as ``in_channels`` and its ``in_index`` renumbered where an unread stage
  left the outputs (``heads_change``). Mask2Former / MaskFormer heads read all outputs. Which
  stage an output is comes from its stride, probed by running the old backbone (HRNet's four
  branches feeding FCN / OCR heads are stages 0..3).
* ``model.pretrained`` (mmseg hands it to the backbone, e.g. ``open-mmlab://resnet50_v1c``)
  becomes None (``pretrained_change``); the Hiera weights come from ``init_cfg``.
* ``data_preprocessor``: Hiera's normalisation, and test-time padding to 32-pixel mask units
  (``preprocessor_change``).
* ``custom_imports``: ``hiera_mm.mmseg`` (never ``hiera_mm.mmdet``); imports that only served
  the old backbone (ConvNeXt's ``mmpretrain.models``) go (``imports_change``).

Refused with the reason and a suggestion (``ValueError``): dilated ResNets whose decoder reads
one stride-8 map (FCN, PSPNet, DeepLabV3(+), ... on ``-d8`` backbones), plain ViTs whose decoder
reads several same-stride maps (SETR, DPT, ViT/BEiT/MAE UperNet), and necks / heads / segmentors
whose inputs are not known to map onto Hiera's stages. SyncBN in the heads stays as it is
(mmengine turns it into BN in single-process runs, the tools in distributed runs without CUDA).

Here: ``readers`` (the checks, the neck and heads reading the backbone) and ``plan`` (the other
segmentor changes, composed).
"""
from .plan import IMPORT, SwapPlan, plan_swap, swap_backbone

__all__ = ['swap_backbone', 'plan_swap', 'SwapPlan', 'IMPORT']
