"""The one way the tools open an exported ONNX graph: an onnxruntime CPU session."""
from __future__ import annotations

from typing import Optional

import torch


def onnxruntime_session(path: str, threads: Optional[int] = None):
    """A CPU onnxruntime session for ``path``, with ``threads`` intra-op threads (default: as many
    as torch uses, so that side-by-side rows compare like with like) and one inter-op thread."""
    try:
        import onnxruntime as ort
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("running an ONNX graph needs onnxruntime: pip install onnxruntime (or "
                          "hiera_mm's [deploy] extra)") from err
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
