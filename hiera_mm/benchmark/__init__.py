"""Speed and memory of the Hiera backbone against other implementations and backbones.

The command line is ``tools/analysis_tools/benchmark_backbone.py``; this package holds what it
runs and needs only torch: mmdet is imported only where installed, to build the swin-t and r50
contenders (timm's otherwise) and for ``--mm-backbone``. The Mask R-CNN training step, which
needs the mm stack, is ``hiera_mm.mmdet.benchmark``.

* ``environment``: what is installed, the machine, the process's peak memory;
* ``contenders``: the models compared and how each is called;
* ``timing``: one timed call (``Timer``) and the alternating rounds;
* ``memory``: peak memory of one call in a fresh process;
* ``compile_check``: ``torch.compile`` of the Hiera trunk against eager;
* ``report``: the markdown tables and the JSON.

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
``batch``, ``dtype``, ``device``, ``threads``, ``runs``, ``warmup``, ``mm_backbone``, ...).
"""
