"""What the TorchScript-based ONNX exporter needs to export any Hiera trunk.

* Opset 14 at least: the attention is ``scaled_dot_product_attention``.
* Opset 18 for the abswin archs (timm's ``hiera_*_abswin_256``): their position embedding is
  resized with antialiased bicubic interpolation, which ONNX's ``Resize`` has from opset 18
  (``antialias=1``) and for which torch's TorchScript exporter has no symbolic. ``register()`` adds
  one. torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``) needs none.

``export`` exports at ``choose_opset``: the opset asked for once ``check_opset`` passes it, or by
default opset 17, or 18 where a trunk needs it.
"""
from __future__ import annotations

import inspect
from typing import Optional

import torch

MIN_OPSET = 14
MIN_OPSET_ANTIALIAS = 18
DEFAULT_OPSET = 17  # what the tools export at unless a trunk needs more


def min_opset(model: torch.nn.Module) -> int:
    """The lowest ONNX opset that exports ``model``'s Hiera trunks correctly."""
    antialias = any(getattr(m, 'pos_embed_antialias', False) for m in model.modules())
    return MIN_OPSET_ANTIALIAS if antialias else MIN_OPSET


def check_opset(model: torch.nn.Module, opset: int) -> None:
    """Raise ValueError, with the reason, where ``opset`` cannot export ``model``'s trunks."""
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset}: Hiera's attention (scaled_dot_product_attention) needs "
                         f'opset {MIN_OPSET} or later')
    if opset < min_opset(model):
        raise ValueError(f'opset {opset}: the abswin position embedding resizes with antialiasing, '
                         f'which ONNX has from opset {MIN_OPSET_ANTIALIAS}')


def choose_opset(model: torch.nn.Module, opset: Optional[int] = None) -> int:
    """``opset`` once ``check_opset`` passes it; ``None``: DEFAULT_OPSET, or more where
    ``model``'s trunks need it."""
    if opset is None:
        return max(DEFAULT_OPSET, min_opset(model))
    check_opset(model, opset)
    return opset


def export(model: torch.nn.Module, args: tuple, path: str, opset: Optional[int] = None,
           **kwargs) -> int:
    """``torch.onnx.export`` through the TorchScript-based exporter at ``choose_opset(model,
    opset)``, after ``register``; ``kwargs`` go to ``torch.onnx.export`` (names, dynamic axes,
    ...). Returns the opset."""
    opset = choose_opset(model, opset)
    register()
    # torch >= 2.5 has both exporters behind one function (the dynamo one is the default from
    # 2.9 on); older ones have only the TorchScript-based one and no `dynamo` argument.
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        kwargs['dynamo'] = False
    torch.onnx.export(model, args, path, opset_version=opset, **kwargs)
    return opset


def _bicubic_antialias(g, x, output_size, align_corners, scale_factors):
    from torch.onnx import symbolic_helper

    def const(value, dtype=torch.int64):
        return g.op('Constant', value_t=torch.tensor(value, dtype=dtype))

    # Output sizes stay graph values (the traced height and width), so the graph resizes to every
    # input's token grid.
    hw = [g.op('Unsqueeze', g.op('Cast', v, to_i=7), const([0]))  # 7: int64
          for v in symbolic_helper._unpack_list(output_size)]
    sizes = g.op('Concat', g.op('Slice', g.op('Shape', x), const([0]), const([2])), *hw, axis_i=0)
    empty = const([], torch.float32)
    # torch's antialiased bicubic is PIL's: a = -0.5, half-pixel centres, taps outside the image
    # dropped and the rest renormalised (exclude_outside).
    return g.op('Resize', x, empty, empty, sizes, mode_s='cubic', cubic_coeff_a_f=-0.5,
                antialias_i=1, coordinate_transformation_mode_s='half_pixel', exclude_outside_i=1)


def register() -> None:
    """Teach torch's TorchScript-based ONNX exporter antialiased bicubic resizing (opset 18+).

    Idempotent; call it before ``torch.onnx.export(..., dynamo=False)`` of an abswin trunk.
    """
    torch.onnx.register_custom_op_symbolic('aten::_upsample_bicubic2d_aa', _bicubic_antialias,
                                           MIN_OPSET_ANTIALIAS)


__all__ = ['DEFAULT_OPSET', 'MIN_OPSET', 'MIN_OPSET_ANTIALIAS', 'check_opset', 'choose_opset',
           'export', 'min_opset', 'register']
