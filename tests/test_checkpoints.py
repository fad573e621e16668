"""Every checkpoint layout against the code that defines it, in float64; conversion round trip."""
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, randomize_
from hiera_mm.checkpoints import CheckpointError, convert_state_dict, detect_layout
from hiera_mm.models.hiera import build_hiera


def stage_diff(ours, refs, nchw_refs=True):
    diffs = []
    for o, r in zip(ours, refs):
        o = o.permute(0, 3, 1, 2) if nchw_refs else o
        assert o.shape == r.shape
        diffs.append(float((o - r).abs().max()))
    return max(diffs)


def load_ours(arch, state):
    conv = convert_state_dict(state)
    model = build_hiera(arch).double().eval()
    model.load_state_dict({k: v.double() for k, v in conv['trunk'].items()})
    return model, conv


def test_fair_layout_matches_fair_hiera():
    hiera = pytest.importorskip('hiera')
    ref = randomize_(hiera.hiera_tiny_224(pretrained=False)).double().eval()
    model, conv = load_ours('tiny', {'model_state': ref.state_dict()})
    assert conv['layout'] == 'fair'
    assert sorted(conv['dropped']) == ['head.projection.bias', 'head.projection.weight',
                                       'norm.bias', 'norm.weight']
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        _, inter = ref(x, return_intermediates=True)  # (B, H, W, C) per stage
        assert stage_diff(model(x), inter, nchw_refs=False) <= 1e-10


def test_timm_layout_matches_timm():
    timm = pytest.importorskip('timm')
    ref = randomize_(timm.create_model('hiera_small_224', pretrained=False)).double().eval()
    model, conv = load_ours('small', ref.state_dict())
    assert conv['layout'] == 'fair'
    assert {k.split('.')[0] + '.' + k.split('.')[1] for k in conv['dropped']} == {'head.fc', 'head.norm'}
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        refs = ref.forward_intermediates(x, intermediates_only=True)
        assert stage_diff(model(x), refs) <= 1e-10


@pytest.mark.parametrize('size', [(1024, 1024), (512, 768)])
def test_sam2_trunk_matches_sam2(size):
    hieradet = pytest.importorskip('sam2.modeling.backbones.hieradet')
    ref = hieradet.Hiera(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9),
                         window_pos_embed_bkg_spatial_size=(7, 7))
    ref = randomize_(ref).double().eval()
    ckpt = {'model': {**{f'image_encoder.trunk.{k}': v for k, v in ref.state_dict().items()},
                      'image_encoder.neck.convs.0.conv.weight': torch.zeros(1),
                      'sam_mask_decoder.iou_token.weight': torch.zeros(1)}}
    model, conv = load_ours('sam2_tiny', ckpt)
    assert conv['layout'] == 'sam2'
    assert sorted(conv['dropped']) == ['image_encoder.neck.convs.0.conv.weight',
                                       'sam_mask_decoder.iou_token.weight']
    x = torch.randn(1, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        assert stage_diff(model(x), ref(x)) <= 1e-10


def test_unknown_layout_is_refused():
    with pytest.raises(CheckpointError, match='not a Hiera checkpoint in any known layout.*conv1.weight'):
        detect_layout({'conv1.weight': torch.zeros(1)})


def test_convert_round_trip(tmp_path, make_hf_checkpoint):
    import hiera_mm  # noqa: F401
    from mmdet.registry import MODELS
    folder, hf = make_hf_checkpoint(embed_dim=96, depths=(1, 2, 7, 2), num_heads=(1, 2, 4, 8))
    out = tmp_path / 'tiny.safetensors'
    res = subprocess.run([sys.executable, 'tools/convert_weights.py', folder, str(out), '--arch', 'tiny'],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "layout 'hf', looks like arch 'tiny'" in res.stdout
    assert 'dropped 2 tensors: pooler (2)' in res.stdout

    def backbone(ckpt):
        m = MODELS.build(dict(type='HieraBackbone', arch='tiny', out_norm=False,
                              init_cfg=dict(type='Pretrained', checkpoint=ckpt)))
        m.init_weights()
        return m.eval()

    a, b = backbone(folder), backbone(str(out))
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)
    # ours -> ours (.pth) keeps every tensor bit for bit, out norms included
    full = MODELS.build(dict(type='HieraBackbone', arch='tiny'))
    full.init_weights()
    src = tmp_path / 'full.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in full.state_dict().items()}}, src)
    res = subprocess.run([sys.executable, 'tools/convert_weights.py', str(src), str(tmp_path / 'again.pth')],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    again = torch.load(tmp_path / 'again.pth', weights_only=True)
    assert again.keys() == full.state_dict().keys()
    assert all(torch.equal(again[k], v) for k, v in full.state_dict().items())
    res = subprocess.run([sys.executable, 'tools/convert_weights.py', folder, str(tmp_path / 'x.pth'),
                          '--arch', 'base'], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0 and "looks like arch 'tiny', not 'base'" in res.stderr
