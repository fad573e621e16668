"""Every checkpoint layout against the code that defines it, in float64; conversion round trip.

The references (FAIR's hiera, timm, SAM2) are installed by `make setup`; a missing one fails here.
"""
import sys

import pytest
import torch

from conftest import randomize_, require, run_tool
from hiera_mm.checkpoints import CheckpointError, convert_state_dict, detect_layout
from hiera_mm.models.hiera import build_hiera

CONVERT = 'tools/model_converters/convert_weights.py'  # run_tool's cwd is ROOT


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
    hiera = require('hiera')
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
    timm = require('timm')
    ref = randomize_(timm.create_model('hiera_small_224', pretrained=False)).double().eval()
    model, conv = load_ours('small', ref.state_dict())
    assert conv['layout'] == 'fair'
    assert {k.split('.')[0] + '.' + k.split('.')[1] for k in conv['dropped']} == {'head.fc', 'head.norm'}
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        refs = ref.forward_intermediates(x, intermediates_only=True)
        assert stage_diff(model(x), refs) <= 1e-10


TORCH_VERSION = tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:3])


@pytest.mark.skipif(TORCH_VERSION < (2, 5, 1), reason='the reference, sam2 1.1.0, needs torch >= '
                    '2.5.1 (not installed in .venv-oldest); the trunk is tested there through the '
                    'other layouts')
def test_sam2_trunk_matches_sam2():
    """At 512 x 768 SAM2-T's windowed stages pad (stage 3: 32 x 48 tokens into windows of 14,
    stage 4: 16 x 24 into windows of 7), the grid is not square, and the window position
    embedding tiles 16 x 24 times: every path of 1024 x 1024, at a quarter of its cost."""
    try:
        from sam2.modeling.backbones import hieradet
    except ImportError as exc:
        pytest.fail(f'the parity reference sam2 is missing ({exc}): `make setup` installs it '
                    '(tools/setup_env.sh)', pytrace=False)
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
    x = torch.randn(1, 3, 512, 768, dtype=torch.float64)
    with torch.no_grad():
        assert stage_diff(model(x), ref(x)) <= 1e-10


def test_unknown_layout_is_refused():
    with pytest.raises(CheckpointError, match='not a Hiera checkpoint in any known layout.*conv1.weight'):
        detect_layout({'conv1.weight': torch.zeros(1)})


def test_convert_round_trip(tmp_path, make_hf_checkpoint):
    import hiera_mm.mmdet  # noqa: F401  (registers into mmdet)
    from mmdet.registry import MODELS
    folder, hf = make_hf_checkpoint(embed_dim=96, depths=(1, 2, 7, 2), num_heads=(1, 2, 4, 8))
    out = tmp_path / 'tiny.safetensors'
    res = run_tool([sys.executable, CONVERT, folder, str(out), '--arch', 'tiny'], timeout=300)
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
    res = run_tool([sys.executable, CONVERT, str(src), str(tmp_path / 'again.pth')], timeout=300)
    assert res.returncode == 0, res.stderr
    again = torch.load(tmp_path / 'again.pth', weights_only=True)
    assert again.keys() == full.state_dict().keys()
    assert all(torch.equal(again[k], v) for k, v in full.state_dict().items())
    res = run_tool([sys.executable, CONVERT, folder, str(tmp_path / 'x.pth'), '--arch', 'base'],
                   timeout=300)
    assert res.returncode != 0 and "looks like arch 'tiny', not 'base'" in res.stderr


# ---------------------------------------------------------------------------------------------
# timm's hiera_{small,base}_abswin_256 (layout 'timm_abswin')
# ---------------------------------------------------------------------------------------------
ABSWIN = {'abswin_small': 'hiera_small_abswin_256', 'abswin_base': 'hiera_base_abswin_256'}


def timm_abswin(arch, size=(256, 256), state=None):
    """timm's model at ``size``: random weights (seeded), LayerScale gains around one and position
    embeddings of unit scale so that both branches and the embedding resize show in the outputs;
    or ``state`` loaded into it."""
    timm = require('timm')
    ref = timm.create_model(ABSWIN[arch], pretrained=False, img_size=size)
    if state is None:
        randomize_(ref)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, p in ref.named_parameters():
                if name.endswith('.gamma'):
                    p.copy_(0.5 + torch.rand(p.shape, generator=gen))
                elif name.startswith('pos_embed'):
                    p.copy_(torch.randn(p.shape, generator=gen))
    else:
        ref.load_state_dict(state)
    return ref.double().eval()


@pytest.fixture(scope='module')
def abswin_files(tmp_path_factory):
    """Factory: arch -> (state dict, {'pth': file, 'safetensors': file}) as timm saves them."""
    from safetensors.torch import save_file
    cache = {}

    def make(arch):
        if arch not in cache:
            state = {k: v.float() for k, v in timm_abswin(arch).state_dict().items()}
            folder = tmp_path_factory.mktemp(arch)
            torch.save(state, folder / 'pytorch_model.pth')
            save_file(state, str(folder / 'model.safetensors'))
            cache[arch] = state, {'pth': str(folder / 'pytorch_model.pth'),
                                  'safetensors': str(folder / 'model.safetensors')}
        return cache[arch]

    return make


def abswin_backbone(arch, checkpoint):
    import hiera_mm.mmdet  # noqa: F401  (registers into mmdet)
    from mmdet.registry import MODELS
    model = MODELS.build(dict(type='HieraBackbone', arch=arch, out_norm=False,
                              init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
    model.init_weights()
    return model.double().eval()


@pytest.mark.parametrize('arch, size, fmt', [
    ('abswin_small', (256, 256), 'safetensors'),
    ('abswin_small', (320, 416), 'pth'),  # another grid: global map resized, window map tiled
    ('abswin_base', (256, 256), 'pth'),
])
def test_timm_abswin_matches_timm(arch, size, fmt, abswin_files):
    state, files = abswin_files(arch)
    conv = convert_state_dict(torch.load(files['pth'], weights_only=True))
    assert conv['layout'] == 'timm_abswin'
    assert sorted(conv['dropped']) == ['head.fc.bias', 'head.fc.weight', 'head.norm.bias',
                                       'head.norm.weight']
    model = abswin_backbone(arch, files[fmt])
    ref = timm_abswin(arch, size, state)  # timm builds its model for one image size
    x = torch.randn(1, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        refs = ref.forward_intermediates(x, intermediates_only=True)
        ours = model(x)  # NCHW, as timm's
        assert len(ours) == len(refs) == 4
        assert stage_diff(ours, refs, nchw_refs=False) <= 1e-10


def test_timm_abswin_wrong_arch_names_the_right_one(abswin_files):
    _, files = abswin_files('abswin_small')
    for wrong in ('small', 'sam2_small', 'abswin_base'):
        with pytest.raises(CheckpointError, match=rf"looks like arch 'abswin_small'.*built as arch "
                                                  rf"'{wrong}'.*set arch='abswin_small'"):
            abswin_backbone(wrong, files['safetensors'])
    _, files = abswin_files('abswin_base')
    with pytest.raises(CheckpointError, match=r"looks like arch 'abswin_base'.*set arch='abswin_base'"):
        abswin_backbone('base', files['pth'])


def test_timm_abswin_convert_round_trip(tmp_path, abswin_files):
    _, files = abswin_files('abswin_small')
    out = tmp_path / 'abswin_small.safetensors'
    res = run_tool([sys.executable, CONVERT, files['safetensors'], str(out),
                    '--arch', 'abswin_small'], timeout=300)
    assert res.returncode == 0, res.stderr
    assert "layout 'timm_abswin', looks like arch 'abswin_small'" in res.stdout
    assert 'dropped 4 tensors: head (4)' in res.stdout
    a, b = abswin_backbone('abswin_small', files['pth']), abswin_backbone('abswin_small', str(out))
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    res = run_tool([sys.executable, CONVERT, files['safetensors'], str(tmp_path / 'x.pth'),
                    '--arch', 'small'], timeout=300)
    assert res.returncode != 0 and "looks like arch 'abswin_small', not 'small'" in res.stderr


def test_abs_win_grid_must_tile_the_window_embedding():
    model = build_hiera('abswin_small').eval()
    with torch.no_grad(), pytest.raises(ValueError, match=r'token grid \(60, 64\) does not tile into '
                                                          r'the 8x8 windows.*multiples of 32x32 pixels'):
        model(torch.randn(1, 3, 240, 256))
