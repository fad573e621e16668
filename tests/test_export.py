"""The trunk leaves PyTorch at any size: exported or traced once, right at every other size.

Each arch family (the paper's Hiera, SAM2's windows and absolute-window embedding, timm's abswin
with antialiased resizing, LayerScale and pooled widening) in both attention modes, at small
widths. Every graph is recorded at one size and then run at sizes off the 32-px grid, below one
window, above the recording size and at another batch, against eager PyTorch.
"""
import warnings

import pytest
import torch
from torch import nn

from hiera_mm.models import HieraStages, onnx as hiera_onnx

SMALL = dict(embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2))
FAMILIES = {
    'hiera': dict(SMALL),
    'sam2': dict(SMALL, window_sizes=(8, 4, 14, 7), global_blocks=(3,), pos_embed='abs_win',
                 pos_embed_size=(7, 7)),
    'abswin': dict(SMALL, pos_embed='abs_win', pos_embed_size=(16, 16), pos_embed_antialias=True,
                   layer_scale=1e-5, pretrain_size=256, expand_proj=False),
}
RECORD_SIZE = (224, 320)
# (batch, height, width): the recording size, then others off the grid, tiny and larger.
RUN_SIZES = [(1, 224, 320), (2, 200, 300), (1, 97, 161), (2, 256, 256), (1, 33, 65),
             (1, 448, 608)]
STAGE_NAMES = [f'stage{i}' for i in range(1, 5)]
TOLERANCE = 1e-4  # onnxruntime against eager, features of order 1


def trunk(family, attention):
    torch.manual_seed(0)
    model = HieraStages(arch=FAMILIES[family], attention=attention).eval()
    with torch.no_grad():  # away from zero init: padding mistakes must show
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def assert_matches_eager(model, run, tolerance, sizes=RUN_SIZES):
    for batch, h, w in sizes:
        x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(h * w))
        with torch.no_grad():
            expected = model(x)
        got = run(x)
        assert len(got) == len(expected)
        for name, e, g in zip(STAGE_NAMES, expected, got):
            g = torch.as_tensor(g)
            assert g.shape == e.shape, (name, (batch, h, w), tuple(g.shape), tuple(e.shape))
            err = (g - e).abs().max().item()
            assert err <= tolerance, (name, (batch, h, w), err)


def onnx_runner(path):
    ort = pytest.importorskip('onnxruntime', reason='the [deploy] extra is not installed')
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    return lambda x: [torch.from_numpy(o) for o in session.run(None, {name: x.numpy()})]


@pytest.mark.parametrize('attention', ['exact', 'windowed'])
@pytest.mark.parametrize('family', list(FAMILIES))
def test_torchscript_onnx_export_runs_at_every_size(family, attention, tmp_path):
    pytest.importorskip('onnx', reason='the [deploy] extra is not installed')
    model = trunk(family, attention)
    path = tmp_path / 'trunk.onnx'
    axes = {'images': {0: 'batch', 2: 'height', 3: 'width'}}
    axes.update({n: {0: 'batch', 2: f'{n}_h', 3: f'{n}_w'} for n in STAGE_NAMES})
    with warnings.catch_warnings():
        # Any size decision frozen into the graph would show up here as a TracerWarning.
        warnings.simplefilter('error', torch.jit.TracerWarning)
        hiera_onnx.export(model, (torch.randn(1, 3, *RECORD_SIZE),), str(path),
                          hiera_onnx.min_opset(model), input_names=['images'],
                          output_names=STAGE_NAMES, dynamic_axes=axes)
    assert_matches_eager(model, onnx_runner(path), TOLERANCE)


def test_min_opset_names_antialias():
    assert hiera_onnx.min_opset(trunk('hiera', 'exact')) == 14  # scaled_dot_product_attention
    assert hiera_onnx.min_opset(trunk('sam2', 'exact')) == 14
    assert hiera_onnx.min_opset(trunk('abswin', 'exact')) == 18  # Resize(antialias=1)
    with pytest.raises(ValueError, match='scaled_dot_product_attention'):
        hiera_onnx.check_opset(trunk('hiera', 'exact'), 13)
    with pytest.raises(ValueError, match='antialiasing, which ONNX has from opset 18'):
        hiera_onnx.check_opset(trunk('abswin', 'exact'), 17)
    hiera_onnx.check_opset(trunk('abswin', 'exact'), 18)


class AllFamilies(nn.Module):
    """One graph holding a trunk of each family: one (slow) dynamo export covers all three."""

    def __init__(self, attention):
        super().__init__()
        self.trunks = nn.ModuleList(trunk(f, attention) for f in FAMILIES)

    def forward(self, x):
        return [y for t in self.trunks for y in t(x)]


@pytest.mark.slow
def test_dynamo_onnx_export_runs_at_every_size(tmp_path):
    pytest.importorskip('onnxscript', reason='the [deploy] extra is not installed')
    from torch.export import Dim

    model = AllFamilies('windowed').eval()
    path = tmp_path / 'trunks.onnx'
    # Recorded at batch 2: torch.export specialises a dimension whose example size is 1.
    torch.onnx.export(model, (torch.randn(2, 3, *RECORD_SIZE),), str(path), dynamo=True,
                      opset_version=18, input_names=['images'],
                      dynamic_shapes={'x': {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}})
    run = onnx_runner(path)
    for i, t in enumerate(model.trunks):
        assert_matches_eager(t, lambda x, i=i: run(x)[4 * i:4 * i + 4], TOLERANCE)


@pytest.mark.parametrize('attention', ['exact', 'windowed'])
@pytest.mark.parametrize('family', list(FAMILIES))
def test_jit_trace_runs_at_every_size(family, attention):
    model = trunk(family, attention)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('error', torch.jit.TracerWarning)
        traced = torch.jit.trace(model, (torch.randn(1, 3, *RECORD_SIZE),))
    with torch.no_grad():
        assert_matches_eager(model, traced, 0.0)  # the same kernels: bit for bit


def test_eager_input_checks_stay_outside_tracing():
    model = trunk('hiera', 'exact')
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        model(torch.randn(1, 4, 64, 64))
