"""Speed and memory of the Hiera backbone against other implementations, backbones and whole
detectors: the harness behind ``tools/analysis_tools/benchmark_backbone.py``.

The harness needs only torch and knows no framework:

* ``environment``: what is installed, the machine, the process's peak memory;
* ``contenders``: the registry of models compared (the hiera_mm trunk, the trunk under
  onnxruntime, transformers' Hiera, timm's Swin-T / ResNet-50) and how each is called;
* ``timing``: one timed call (``Timer``) and the alternating rounds;
* ``memory``: peak memory of one call in a fresh process;
* ``compile_check``: ``torch.compile`` of the Hiera trunk against eager;
* ``report``: the markdown tables and the JSON.

Framework plug-ins register their own rows and extras when loaded
(``contenders.load_plugins``): ``openmmlab`` (mmdet's Swin-T and ResNet-50, ``HieraBackbone``,
the Mask R-CNN training step) and ``detectron2`` (the whole Detectron2 Mask R-CNN, eager and under
onnxruntime).

Method. All contenders are built first; then every round times each contender once, in an order
rotated by one per round, so that drift of a shared machine hits all of them alike. Warm-up
rounds are discarded, the median (and min) of the timed rounds is reported, with the time ratio
to the baseline and to swin-t (< 1 = faster; the JSON also has the median of the per-round
ratios, and the process CPU time of every call). Forward runs under ``torch.inference_mode`` in
eval mode; forward+backward in train mode sums the means of the outputs and calls backward.
bf16 / fp16 run under ``torch.autocast``.

Memory comes from one call per fresh process (``memory``, whose docstring says what is
measured), timings from the alternating in-process rounds.

The functions take the tool's parsed arguments (an ``argparse.Namespace``: ``arch``, ``size``,
``batch``, ``dtype``, ``device``, ``threads``, ``runs``, ``warmup``, ``mode``, ...).
"""
