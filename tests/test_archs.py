"""hiera_mm/archs.py and the models built from it against the published facts: the Hiera paper's
model table, SAM 2.1's released trunk configs, the hub ids, stage widths and strides, the ImageNet
normalisation; and, where the reference code is installed, against the models it builds.

The expected values are literals (here and in conftest.py), never read from hiera_mm. Full-size
models are built on the 'meta' device: structure without weights, no compute.
"""
import inspect
import os

import pytest
import torch

from conftest import HIERA_PAPER, HUB_IDS, SAM2_RELEASED, paper_arch, require
from hiera_mm import archs
from hiera_mm.models import HieraStages
from hiera_mm.models.hiera import build_hiera

# Stage widths: the paper's channels double at every stage (tiny: 96, 192, 384, 768).
WIDTHS = {
    'tiny': [96, 192, 384, 768], 'small': [96, 192, 384, 768], 'base': [96, 192, 384, 768],
    'base_plus': [112, 224, 448, 896], 'large': [144, 288, 576, 1152],
    'huge': [256, 512, 1024, 2048],
}
STRIDES = (4, 8, 16, 32)  # patch embedding stride 4, then 2x2 query pooling at stages 2-4
# ImageNet statistics on the 0-1 scale (Hiera's and SAM2's preprocessing, the facebook/hiera-*-hf
# preprocessor_config.json), which configs state on the 0-255 scale.
MEAN_01, STD_01 = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TORCH_VERSION = tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:3])
SAM2_SIZES = {'tiny': 't', 'small': 's', 'base_plus': 'b+', 'large': 'l'}


def on_meta(fn, *args, **kwargs):
    with torch.device('meta'):
        return fn(*args, **kwargs)


def reference_on_meta(monkeypatch, fn, *args, **kwargs):
    """A reference model on 'meta': its drop-path rates (``torch.linspace(...)`` read back with
    ``.item()``) are made on the CPU."""
    linspace = torch.linspace
    monkeypatch.setattr(torch, 'linspace',
                        lambda *a, **k: linspace(*a, **dict(k, device=k.get('device', 'cpu'))))
    return on_meta(fn, *args, **kwargs)


def stage_of_blocks(depths):
    return [s for s, d in enumerate(depths) for _ in range(d)]


# ---------------------------------------------------------------------------------------------
# archs.py against the literals
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('size', list(HIERA_PAPER))
def test_arch_settings_are_the_papers(size):
    settings = archs.ARCH_SETTINGS[size]
    want = paper_arch(size)
    assert settings['embed_dim'] == want['embed_dim']
    assert tuple(settings['depths']) == want['depths']
    assert tuple(settings['num_heads']) == want['num_heads']
    assert archs.stage_widths(size) == WIDTHS[size]


@pytest.mark.parametrize('release', ['sam2', 'sam2.1'])
@pytest.mark.parametrize('size', list(SAM2_RELEASED))
def test_sam2_trunks_are_the_released_configs(size, release):
    settings = archs.ARCH_SETTINGS[f'{release}_{size}']
    want = SAM2_RELEASED[size]
    assert settings['embed_dim'] == want['embed_dim']
    assert tuple(settings['depths']) == want['stages']
    assert tuple(settings['num_heads']) == tuple(want['num_heads'] * 2 ** i for i in range(4))
    assert tuple(settings['window_sizes']) == want['window_spec']
    assert tuple(settings['global_blocks']) == want['global_att_blocks']
    assert settings['pos_embed'] == 'abs_win'
    assert tuple(settings['pos_embed_size']) == want['window_pos_embed_bkg_spatial_size']
    # a SAM2 trunk has the stage widths of the paper's model of its size
    assert archs.stage_widths(f'{release}_{size}') == WIDTHS[size]
    assert archs.model_size(f'{release}_{size}') == size


def test_hub_ids():
    assert archs.HUB_IDS == HUB_IDS
    assert set(archs.HUB_IDS) == set(HIERA_PAPER)


def test_strides_size_divisor_and_normalisation():
    assert tuple(archs.STAGE_STRIDES) == STRIDES
    # patch stride 4 x mask unit of 8x8 tokens: inputs pad to multiples of 32 pixels
    assert archs.SIZE_DIVISOR == 32
    assert archs.IMAGENET_MEAN == pytest.approx([255 * m for m in MEAN_01])
    assert archs.IMAGENET_STD == pytest.approx([255 * s for s in STD_01])


def test_conftest_normalisation_is_the_published_one():
    """The literals every config test compares with (conftest.IMAGENET_MEAN / STD)."""
    from conftest import IMAGENET_MEAN, IMAGENET_STD
    assert IMAGENET_MEAN == pytest.approx([255 * m for m in MEAN_01])
    assert IMAGENET_STD == pytest.approx([255 * s for s in STD_01])


# ---------------------------------------------------------------------------------------------
# the built models against the literals
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('arch', list(HIERA_PAPER) + [f'sam2.1_{s}' for s in SAM2_RELEASED])
def test_built_trunk_has_the_published_structure(arch):
    size = arch.split('_', 1)[1] if arch.startswith('sam2') else arch
    model = on_meta(HieraStages, arch=arch, out_indices=(0, 1, 2, 3))
    trunk = model.trunk
    want = paper_arch(size)
    assert trunk.patch_embed.proj.out_channels == want['embed_dim']
    assert list(model.out_channels) == WIDTHS[size] == list(trunk.num_features)
    assert len(trunk.blocks) == sum(want['depths'])
    stages = stage_of_blocks(want['depths'])
    assert [b.attn.num_heads for b in trunk.blocks] == [want['num_heads'][s] for s in stages]
    assert [b.mlp.fc2.out_features for b in trunk.blocks] == [WIDTHS[size][s] for s in stages]
    # query pooling (stride 2) in the first block of stages 2-4
    firsts = {sum(want['depths'][:s]) for s in (1, 2, 3)}
    assert [b.q_stride for b in trunk.blocks] == [2 if i in firsts else 1
                                                  for i in range(len(stages))]
    if arch.startswith('sam2'):
        assert trunk.global_blocks == SAM2_RELEASED[size]['global_att_blocks']


@pytest.mark.parametrize('arch', ['tiny', 'sam2.1_tiny', 'abswin_small'])
def test_stage_maps_have_the_strides(arch):
    model = HieraStages(arch=arch, out_indices=(0, 1, 2, 3)).eval()
    for height, width in [(64, 96), (100, 70)]:  # 100 x 70: padded to 128 x 96 inside
        with torch.no_grad():
            outs = model(torch.randn(1, 3, height, width))
        pad_h, pad_w = -(-height // 32) * 32, -(-width // 32) * 32
        assert [tuple(o.shape[-2:]) for o in outs] == [(pad_h // s, pad_w // s) for s in STRIDES]


# ---------------------------------------------------------------------------------------------
# the literals and the built models against the reference implementations
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('size', list(HIERA_PAPER))
def test_fair_hiera_builds_the_same_structure(size, monkeypatch):
    """FAIR's hiera (hiera-transformer) builds the paper's models: block by block the same
    widths, heads, query pooling and mask-unit attention as ours."""
    hiera = require('hiera')
    ref = reference_on_meta(monkeypatch, getattr(hiera, f'hiera_{size}_224'), pretrained=False)
    ours = on_meta(build_hiera, size)
    want = paper_arch(size)
    assert ref.patch_embed.proj.out_channels == want['embed_dim']
    assert list(ref.stage_ends) == [sum(want['depths'][:i + 1]) - 1 for i in range(4)]
    assert list(ours.stage_ends) == list(ref.stage_ends)
    assert [b.attn.heads for b in ref.blocks] == [b.attn.num_heads for b in ours.blocks]
    assert [b.dim_out for b in ref.blocks] == [b.mlp.fc2.out_features for b in ours.blocks]
    # FAIR's q_stride is flattened (2x2 = 4)
    assert [b.attn.q_stride for b in ref.blocks] == [b.q_stride ** 2 for b in ours.blocks]
    # mask-unit attention in stages 1-2 (and the first block of stage 3), global after
    assert [b.attn.use_mask_unit_attn for b in ref.blocks] == [b.attn.window > 0
                                                               for b in ours.blocks]


@pytest.mark.parametrize('arch, timm_name, size', [
    ('tiny', 'hiera_tiny_224', 224),
    ('abswin_small', 'hiera_small_abswin_256', 256),
    ('abswin_base', 'hiera_base_abswin_256', 256),
])
def test_timm_builds_the_same_structure_and_normalisation(arch, timm_name, size, monkeypatch):
    timm = require('timm')
    ref = reference_on_meta(monkeypatch, timm.create_model, timm_name, pretrained=False)
    ours = on_meta(build_hiera, arch)
    assert list(ref.stage_ends) == list(ours.stage_ends)
    assert [b.attn.heads for b in ref.blocks] == [b.attn.num_heads for b in ours.blocks]
    assert [b.dim_out for b in ref.blocks] == [b.mlp.fc2.out_features for b in ours.blocks]
    cfg = ref.pretrained_cfg
    assert tuple(cfg['input_size']) == (3, size, size)
    assert tuple(cfg['mean']) == pytest.approx(MEAN_01)
    assert tuple(cfg['std']) == pytest.approx(STD_01)
    if arch.startswith('abswin'):
        # the absolute-window position embedding: a global map and a tiled window map
        assert tuple(ref.pos_embed.shape[-2:]) == tuple(ours.pos_embed.shape[-2:])
        assert tuple(ref.pos_embed_win.shape[-2:]) == tuple(ours.pos_embed_window.shape[-2:])


@pytest.mark.skipif(TORCH_VERSION < (2, 5, 1), reason='the reference, sam2 1.1.0, needs torch >= '
                    '2.5.1 (not installed in .venv-oldest)')
@pytest.mark.parametrize('size', list(SAM2_RELEASED))
def test_sam2_release_configs_and_trunks(size, monkeypatch):
    """The literals against the config files sam2 ships, and ours against the trunk SAM2 builds
    from them: block by block the same windows, global blocks, heads and widths."""
    import yaml
    try:
        import sam2
        from sam2.modeling.backbones import hieradet
    except ImportError as exc:
        pytest.fail(f'the parity reference sam2 is missing ({exc}): `make setup` installs it '
                    '(tools/setup_env.sh)', pytrace=False)
    path = os.path.join(os.path.dirname(sam2.__file__), 'configs', 'sam2.1',
                        f'sam2.1_hiera_{SAM2_SIZES[size]}.yaml')
    with open(path) as f:
        trunk_cfg = yaml.safe_load(f)['model']['image_encoder']['trunk']
    defaults = {k: p.default for k, p in inspect.signature(hieradet.Hiera).parameters.items()}
    released = {k: trunk_cfg.get(k, defaults[k]) for k in SAM2_RELEASED[size]}
    assert {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in released.items()} == \
        SAM2_RELEASED[size]
    ref = reference_on_meta(monkeypatch, hieradet.Hiera,
                            **{k: v for k, v in trunk_cfg.items() if k != '_target_'})
    ours = on_meta(build_hiera, f'sam2.1_{size}')
    assert [b.window_size for b in ref.blocks] == [b.attn.window for b in ours.blocks]
    assert [b.attn.num_heads for b in ref.blocks] == [b.attn.num_heads for b in ours.blocks]
    assert [b.dim_out for b in ref.blocks] == [b.mlp.fc2.out_features for b in ours.blocks]
    assert [b.pool is not None for b in ref.blocks] == [b.q_stride == 2 for b in ours.blocks]
    assert tuple(ref.pos_embed.shape[-2:]) == tuple(ours.pos_embed.shape[-2:])
    assert tuple(ref.pos_embed_window.shape[-2:]) == tuple(ours.pos_embed_window.shape[-2:])
