"""A rewrite for mmdeploy (1.x): adaptive average pooling that stays right at every input size.

mmdeploy replaces ``F.adaptive_avg_pool2d`` (the PSP module of UperNet, whatever the backbone)
by ``avg_pool2d`` with a kernel fixed at the export size: with dynamic shapes the graph is exact
only at that size (measured on the toy UperNet: logits off by up to 0.05 at 211 x 300 after an
export at 192 x 192), and at a small export size (a 4 x 4 map for the 6 x 6 bins) the export
fails with "stride should not be zero". Importing this module registers
``hiera_mm_tools.export.openmmlab.exact_adaptive_avg_pool2d`` for the onnxruntime backend; mmdeploy
prefers a backend's rewrite to its default one. The deploy configs in ``configs/deploy`` import
it (``custom_imports``).
"""
from mmdeploy.core import FUNCTION_REWRITER

from .openmmlab import exact_adaptive_avg_pool2d


@FUNCTION_REWRITER.register_rewriter(
    func_name='torch.nn.functional.adaptive_avg_pool2d', backend='onnxruntime')
def adaptive_avg_pool2d__exact(input, output_size):
    """Rewrite of ``F.adaptive_avg_pool2d`` for onnxruntime: bins from the input size."""
    return exact_adaptive_avg_pool2d(input, output_size)


__all__ = ['adaptive_avg_pool2d__exact']
