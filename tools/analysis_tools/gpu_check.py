#!/usr/bin/env python
"""The GPU check in one command: parity with transformers, bf16/fp16 bounds, fused attention,
speed and memory against other Hiera / Swin implementations, and AMP training iterations of
mmdet, mmseg and Detectron2 (see ``hiera_mm_tools.gpu_check`` for the sections).

    python tools/analysis_tools/gpu_check.py --out work_dirs/gpu_check     # one GPU, <= 8 min
    python tools/analysis_tools/gpu_check.py --device cpu --quick          # no GPU: small, CPU

Writes gpu_check.json and gpu_check.md to --out; exits 1 when a check failed.
"""
import sys

from hiera_mm_tools.gpu_check import main

if __name__ == '__main__':
    sys.exit(main())
