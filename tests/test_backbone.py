"""HieraBackbone: parity with transformers' Hiera, any size, mmdet conventions, argument and input
checks.

Parity runs the paper's archs; behaviour that does not depend on depth or width (shapes, padding,
freezing, checkpointing, caches, drop path) runs on ``MID``, Hiera-T's layout at a fraction of its
compute.
"""

import pytest
import torch
import torch.nn.functional as F

import hiera_mm.mmdet  # noqa: F401  (registers into mmdet)
from hiera_mm.checkpoints import CheckpointError
from conftest import paper_arch, randomize_
from mmdet.registry import MODELS

TOL = 1e-4
SMALL = dict(embed_dim=48, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8))  # one block per stage
# Hiera-T's layout (heads, pooling, mask-unit attention in stages 1-2, several stage-3 blocks of
# which 'windowed' keeps the last global) at a third of the width and a third of the blocks.
MID = dict(embed_dim=32, depths=(1, 2, 3, 2), num_heads=(1, 2, 4, 8))
MID_WIDTHS = [32, 64, 128, 256]
# timm's abswin layout (absolute-window position embedding, LayerScale, pooled widening), MID-sized
MID_ABSWIN = dict(MID, pos_embed='abs_win', pos_embed_antialias=True, pos_embed_size=(16, 16),
                  layer_scale=1e-5, pretrain_size=256, expand_proj=False)


def build(arch='tiny', checkpoint=None, **kwargs):
    cfg = dict(type='HieraBackbone', arch=arch, **kwargs)
    if checkpoint is not None:
        cfg['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def hf_stage_maps(hf_model, x):
    with torch.no_grad():
        states = hf_model(x, output_hidden_states=True).reshaped_hidden_states[1:]
    return [s.permute(0, 3, 1, 2) for s in states]


def max_diff(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape, (x.shape, y.shape)
    return max(float((x - y).detach().abs().max()) for x, y in zip(a, b))


def stage_shapes(batch, height, width, embed_dim):
    """The four output shapes: inputs are padded to whole 32-pixel mask units."""
    Hp, Wp = -(-height // 32) * 32, -(-width // 32) * 32
    return [(batch, embed_dim * 2 ** i, Hp // 2 ** (i + 2), Wp // 2 ** (i + 2)) for i in range(4)]


def arch_cfg(arch):
    """The paper's arch (conftest's literals), for transformers' HieraConfig."""
    return paper_arch(arch)


def structure(arch, **kwargs):
    """The backbone built on the 'meta' device: its structure without weights or compute."""
    with torch.device('meta'):
        return MODELS.build(dict(type='HieraBackbone', arch=arch, **kwargs))


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base', 'base_plus'])
def test_parity_with_transformers_at_224(arch, make_hf_checkpoint):
    folder, hf = make_hf_checkpoint(**arch_cfg(arch))
    model = build(arch, folder, out_norm=False)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ours = model(x)
    assert max_diff(ours, hf_stage_maps(hf, x)) <= TOL


@pytest.mark.parametrize('arch', ['large', 'huge'])
def test_parity_large_and_huge_widths_at_reduced_depth(arch, make_hf_checkpoint):
    cfg = dict(arch_cfg(arch), depths=(1, 1, 2, 1))  # every stage's width, a non-pooling block
    folder, hf = make_hf_checkpoint(**cfg)
    model = build(dict(cfg), folder, out_norm=False)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ours = model(x)
    assert max_diff(ours, hf_stage_maps(hf, x)) <= TOL


# Position embedding grown on both axes (odd and even counts of mask units), square, and shrunk on
# one axis while grown on the other (5 x 11 mask units).
@pytest.mark.parametrize('size', [(320, 480), (512, 512), (160, 352)])
def test_parity_at_other_sizes(size, make_hf_checkpoint):
    """All four stages against an HF model built for that size with the 224 position embedding
    resized as ``interpolate_pos_encoding`` resizes it; the last stage also against the 224
    model run with ``interpolate_pos_encoding=True``."""
    import transformers
    from conftest import hf_config
    folder, hf224 = make_hf_checkpoint(**arch_cfg('tiny'))
    H, W = size
    hf_sized = transformers.HieraModel(hf_config(**arch_cfg('tiny'), image_size=size)).eval()
    state = dict(hf224.state_dict())
    pos = hf224.embeddings.position_embeddings
    dummy = torch.zeros(1, (H // 4) * (W // 4), pos.shape[-1])
    with torch.no_grad():
        state['embeddings.position_embeddings'] = hf224.embeddings.interpolate_pos_encoding(
            dummy, pos, H, W)
    hf_sized.load_state_dict(state)

    model = build('tiny', folder, out_norm=False)
    x = torch.randn(1, 3, H, W)
    with torch.no_grad():
        ours = model(x)
        last_interp = hf224(x, interpolate_pos_encoding=True).last_hidden_state
    assert [o.shape[-2:] for o in ours] == [(H // s, W // s) for s in (4, 8, 16, 32)]
    assert max_diff(ours, hf_stage_maps(hf_sized, x)) <= TOL
    assert float((ours[-1].flatten(2).transpose(1, 2) - last_interp).abs().max()) <= TOL


@pytest.mark.parametrize('model_cls', ['HieraForImageClassification', 'HieraForPreTraining'])
def test_loads_hf_wrappers_with_prefix(model_cls, make_hf_checkpoint):
    extra = dict(decoder_hidden_size=64, decoder_depth=1, decoder_num_heads=1) \
        if model_cls == 'HieraForPreTraining' else {}
    folder, hf = make_hf_checkpoint(model_cls, **MID, **extra)
    import transformers
    encoder = transformers.HieraModel(hf.config).eval()  # the MAE encoder without masking
    encoder.load_state_dict(hf.hiera.state_dict(), strict=False)
    model = build(MID, folder, out_norm=False)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert max_diff(model(x), hf_stage_maps(encoder, x)) <= TOL


def test_windowed_equals_exact_at_224_and_differs_above(make_hf_checkpoint):
    folder, _ = make_hf_checkpoint(**MID)
    exact = build(MID, folder)
    windowed = build(MID, folder, attention='windowed')
    none_global = build(MID, folder, attention='windowed', global_blocks=())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert max_diff(exact(x), windowed(x)) == 0.0
        assert max_diff(exact(x), none_global(x)) == 0.0
        big = torch.randn(1, 3, 448, 640)
        e, w = exact(big), windowed(big)
    assert max_diff(e[:2], w[:2]) == 0.0  # stages 1-2 are mask-unit attention in both modes
    assert max_diff(e[2:], w[2:]) > 1e-3


# 'windowed' attends in windows of 14 (stage 3) and 7 (stage 4) tokens: 288 x 416 is a multiple of
# 32 whose stage-3/4 grids (18 x 26, 9 x 13) pad to whole windows; 448 x 448 needs no padding at
# all; 333 x 517 pads the input to 352 x 544 and then the windows. (800 x 1344 and 1024 x 1024, the
# detection sizes, take the same paths.)
@pytest.mark.parametrize('size', [(288, 416), (448, 448), (333, 517)])
def test_shapes_any_size(size):
    model = build(MID, attention='windowed')
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert [tuple(o.shape) for o in outs] == stage_shapes(1, *size, 32)
    assert model.out_channels == MID_WIDTHS


def test_out_channels_of_tiny():
    assert structure('tiny').out_channels == [96, 192, 384, 768]  # the paper's Hiera-T


@pytest.mark.parametrize('arch, shape', [
    (SMALL, (1, 3, 1, 1)),  # smaller than a mask unit: padded to one
    (SMALL, (0, 3, 64, 64)),  # empty batch
    (dict(SMALL, in_chans=4), (1, 4, 64, 64)),
])
def test_unusual_but_valid_inputs(arch, shape):
    with torch.no_grad():
        outs = build(arch)(torch.randn(shape))
    B, _, H, W = shape
    assert [tuple(o.shape) for o in outs] == stage_shapes(B, H, W, 48)


@pytest.mark.parametrize('layout', ['channels_last', 'transposed'])
def test_memory_layout_does_not_change_outputs(layout):
    torch.manual_seed(0)
    model = build(SMALL)
    x = torch.randn(2, 3, 64, 96)
    variant = (x.to(memory_format=torch.channels_last) if layout == 'channels_last'
               else x.transpose(2, 3).contiguous().transpose(2, 3))
    assert not variant.is_contiguous()
    with torch.no_grad():
        assert max_diff(model(x), model(variant)) <= 1e-5


@pytest.mark.parametrize('arch, kwargs, expected', [
    ('tiny', {}, ()),
    ('tiny', dict(attention='windowed'), (9,)),  # the last stage-3 block
    ('tiny', dict(attention='windowed', global_blocks=(11, 4, 11)), (4, 11)),
    ('sam2_tiny', dict(attention='windowed'), (5, 7, 9)),  # SAM2's own
    ('sam2_tiny', dict(global_blocks=()), ()),
    (dict(SMALL, global_blocks=(3,)), dict(attention='windowed'), (3,)),  # an arch dict's own
])
def test_global_blocks(arch, kwargs, expected):
    assert structure(arch, **kwargs).trunk.global_blocks == expected


def test_padding_matches_explicit_padding():
    model = build(MID)
    x = torch.randn(1, 3, 200, 300)
    with torch.no_grad():
        assert max_diff(model(x), model(F.pad(x, (0, 20, 0, 24)))) == 0.0


def test_out_indices_and_out_norm():
    model = randomize_(build(MID, out_indices=(1, 3)))
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [64, 256]
    assert set(model.out_norms) == {'stage2', 'stage4'}
    raw = build(MID, out_indices=(1, 3), out_norm=False)
    assert raw.out_norms is None
    missing, unexpected = raw.load_state_dict(model.state_dict(), strict=False)
    assert missing == [] and sorted(unexpected) == [
        'out_norms.stage2.bias', 'out_norms.stage2.weight', 'out_norms.stage4.bias',
        'out_norms.stage4.weight']
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        normed, plain = model(x), raw(x)
    # the same trunk; each emitted map is the raw one through its stage's LayerNorm (channels)
    for out, ref, name in zip(normed, plain, ('stage2', 'stage4')):
        want = model.out_norms[name](ref.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        assert max_diff([out], [want]) <= 1e-5
        assert max_diff([out], [ref]) > 1e-2  # the norm did something
    # with unit gain and zero bias the out norm makes each position zero-mean over channels
    fresh = build(MID, out_indices=(1, 3))
    with torch.no_grad():
        norm_out = fresh(torch.ones(1, 3, 64, 64))[0]
    assert float(norm_out.mean(1).abs().max()) < 1e-4


def test_gradients_reach_every_trainable_parameter():
    model = build(MID, out_indices=(0, 1, 2, 3)).train()
    outs = model(torch.randn(2, 3, 96, 64))
    sum(o.square().mean() for o in outs).backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and
               (p.grad is None or float(p.grad.abs().sum()) == 0.0)]
    assert no_grad == []


@pytest.mark.parametrize('frozen', [-1, 0, 1, 2, 4])
def test_frozen_stages(frozen):
    model = build(MID, frozen_stages=frozen).train()
    ends = model.trunk.stage_ends
    for name, p in model.named_parameters():
        if name.startswith(('trunk.patch_embed', 'trunk.pos_embed')):
            should_freeze = frozen >= 0
        elif name.startswith('trunk.blocks.'):
            block = int(name.split('.')[2])
            stage = next(s for s, e in enumerate(ends) if block <= e)
            should_freeze = stage < frozen
        else:  # out_norms.stageK
            should_freeze = int(name.split('.')[1][len('stage'):]) <= frozen
        assert p.requires_grad != should_freeze, name
    # frozen modules stay in eval mode after train(); train() returns the module
    assert model.train() is model
    if frozen >= 1:
        assert not model.trunk.blocks[0].training
        assert model.trunk.blocks[-1].training == (frozen < 4)
    frozen_before = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = [p for p in model.parameters() if p.requires_grad]
    if trainable:
        opt = torch.optim.SGD(trainable, lr=1.0)
        sum(o.mean() for o in model(torch.randn(1, 3, 64, 64))).backward()
        opt.step()
    for n, p in model.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), n


def test_with_cp_same_outputs_and_gradients():
    torch.manual_seed(0)
    plain = build(MID).train()
    cp = build(MID, with_cp=True).train()
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 96, 96)
    outs = [m(x) for m in (plain, cp)]
    assert max_diff(outs[0], outs[1]) == 0.0
    for o in outs:
        sum(t.sum() for t in o).backward()
    for (n, a), (_, b) in zip(plain.named_parameters(), cp.named_parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), n


def test_inference_pos_embed_cache_follows_the_weights():
    model = build(MID)
    other = build(MID)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        model(x)  # fills the cache for this size
        model.load_state_dict(other.state_dict())
        after_load = model(x)
        assert max_diff(after_load, other(x)) == 0.0
        model.trunk.pos_embed.add_(torch.randn_like(model.trunk.pos_embed))  # an in-place edit
        edited = model(x)
    assert max_diff(edited, [t.detach() for t in model(x)]) < 1e-5  # autograd path: no cache
    assert max_diff(edited, after_load) > 1e-3


def test_drop_path_changes_training_outputs_only():
    model = build(MID, drop_path_rate=0.5)
    ref = build(MID)
    ref.load_state_dict(model.state_dict())
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        assert max_diff(model.eval()(x), ref(x)) == 0.0
        torch.manual_seed(1)
        assert max_diff(model.train()(x), ref(x)) > 1e-3


@pytest.mark.parametrize('arch, kwargs', [
    (MID, {}),
    (MID, dict(attention='windowed')),  # 40x72 tokens: windows of 56 need padding
    (MID_ABSWIN, {}),  # LayerScale and the pooled stage widening
], ids=['mid', 'mid-windowed', 'mid-abswin'])
def test_inference_path_equals_autograd_path(arch, kwargs):
    """Without autograd the blocks run in place (GELU, residuals): same numbers as with it."""
    model = randomize_(build(arch, **kwargs))  # LayerScale gains ~1, not 1e-5: branches count
    x = torch.randn(2, 3, 160, 288)
    with torch.no_grad():
        fast = model(x)
    slow = model(x)
    assert all(t.requires_grad for t in slow)
    assert max_diff(fast, [t.detach() for t in slow]) < 1e-5


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown Hiera arch 'tinyy'.*choose one of"):
        build('tinyy')


def test_checkpoint_of_another_arch_names_it(make_hf_checkpoint):
    folder, _ = make_hf_checkpoint(**arch_cfg('small'))
    with pytest.raises(CheckpointError, match=r"looks like arch 'small'.*built as arch 'tiny'.*"
                                              r"set arch='small'"):
        build('tiny', folder)
    folder, _ = make_hf_checkpoint(**arch_cfg('base_plus'))
    with pytest.raises(CheckpointError, match=r"shape mismatches, e\.g\. .*checkpoint \(112, 3, 7, 7\) "
                                              r"vs model \(96, 3, 7, 7\).*arch='base_plus'"):
        build('base', folder)


def test_missing_and_corrupt_files(tmp_path, make_hf_checkpoint):
    with pytest.raises(CheckpointError, match='does not exist'):
        build(MID, str(tmp_path / 'nope.pth'))
    folder, _ = make_hf_checkpoint(**MID)
    data = open(f'{folder}/model.safetensors', 'rb').read()
    broken = tmp_path / 'broken.safetensors'
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        build(MID, str(broken))
    pth = tmp_path / 'broken.pth'
    torch.save({'x': torch.zeros(3)}, pth)
    pth.write_bytes(pth.read_bytes()[:40])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        build(MID, str(pth))
    with pytest.raises(CheckpointError, match='holds no model.safetensors'):
        build(MID, str(tmp_path))


def test_missing_keys_are_an_error(tmp_path, make_hf_checkpoint):
    from safetensors.torch import load_file, save_file
    folder, _ = make_hf_checkpoint(**arch_cfg('tiny'))
    state = load_file(f'{folder}/model.safetensors')
    del state['encoder.stages.2.layers.3.mlp.fc1.weight']
    save_file(state, str(tmp_path / 'partial.safetensors'))
    with pytest.raises(CheckpointError, match=r'1 trunk tensors missing, e\.g\. blocks\.6\.mlp\.fc1\.weight'):
        build('tiny', str(tmp_path / 'partial.safetensors'))


def test_hf_id_offline_without_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('HF_HUB_CACHE', str(tmp_path / 'empty-cache'))
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(c, 'HF_HUB_CACHE', str(tmp_path / 'empty-cache'))
    with pytest.raises(CheckpointError, match=r"cannot get 'hf://facebook/hiera-tiny-224-hf'.*"
                                              r'huggingface-cli download facebook/hiera-tiny-224-hf'):
        build(MID, 'hf://facebook/hiera-tiny-224-hf')


def test_hf_id_from_local_cache(tmp_path, monkeypatch, make_hf_checkpoint):
    """An hf:// id resolves through huggingface_hub's cache layout (as after a real download);
    the files are a MID-sized model's."""
    import shutil
    folder, hf = make_hf_checkpoint(**MID)
    cache = tmp_path / 'hub'
    repo = cache / 'models--facebook--hiera-tiny-224-hf'
    snap = repo / 'snapshots' / ('0' * 40)
    snap.mkdir(parents=True)
    for name in ('config.json', 'model.safetensors'):
        shutil.copy(f'{folder}/{name}', snap / name)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text('0' * 40)
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, 'HF_HUB_CACHE', str(cache))
    monkeypatch.setattr(c, 'HF_HUB_OFFLINE', True)
    model = build(MID, 'hf://facebook/hiera-tiny-224-hf', out_norm=False)
    x = torch.randn(1, 3, 224, 224)
    assert max_diff(model(x), hf_stage_maps(hf, x)) <= TOL


@pytest.mark.parametrize('bad, exc, match', [
    (torch.randn(3, 64, 64), ValueError, r'\(B, 3, H, W\).*\(3, 64, 64\)'),
    (torch.randn(1, 1, 64, 64), ValueError, r'\(B, 3, H, W\).*\(1, 1, 64, 64\)'),
    (torch.randn(1, 3, 0, 64), ValueError, r'\(1, 3, 0, 64\)'),
    (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), TypeError, 'floating point.*uint8'),
])
def test_bad_input(bad, exc, match):
    model = build(SMALL)
    with pytest.raises(exc, match=match):
        model(bad)


@pytest.mark.parametrize('kwargs, exc, match', [
    (dict(arch=dict(embed_dim=48, depths=(1, 1, 1, 1))), ValueError,
     r"a custom Hiera arch needs \['num_heads'\]"),
    (dict(arch=3), TypeError, 'arch must be a name or a dict, got int'),
    (dict(arch=dict(SMALL, depths=(1, 1, 1))), ValueError, 'must have one entry per stage'),
    (dict(arch=dict(SMALL, depths=(1, 0, 1, 1))), ValueError,
     r'depths \(1, 0, 1, 1\): every stage needs at least one block'),
    (dict(arch=dict(SMALL, depths=(1, 1, 1, 2), window_sizes=(8, 4, 14))), ValueError,
     r'window_sizes \(8, 4, 14\) must have one entry per stage \(4\)'),
    (dict(arch=dict(SMALL, num_heads=(5, 2, 4, 8))), ValueError,
     'dim_out 48 is not divisible by num_heads 5'),
    (dict(arch=dict(SMALL, pos_embed='rel')), ValueError,
     "pos_embed must be 'abs' or 'abs_win', got 'rel'"),
    (dict(out_indices=()), ValueError, r'out_indices \(\) must name stages 0\.\.3'),
    (dict(out_indices=(-1,)), ValueError, r'out_indices \(-1,\) must name stages 0\.\.3'),
    (dict(out_indices=(0, 4)), ValueError, r'out_indices \(0, 4\) must name stages 0\.\.3'),
    (dict(out_indices=(1, 1)), ValueError, 'repeats a stage'),
    (dict(frozen_stages=5), ValueError, 'frozen_stages=5 is out of range'),
    (dict(frozen_stages=-2), ValueError, 'frozen_stages=-2 is out of range'),
    (dict(drop_path_rate=-0.5), ValueError, r'drop_path_rate must be in \[0, 1\), got -0\.5'),
    (dict(attention='local'), ValueError, "attention must be one of.*'local'"),
    (dict(attention='windowed', global_blocks=(2,)), ValueError,
     r'global_blocks \[2\] are not stage-3 or stage-4 blocks.*3\.\.11'),
    (dict(global_blocks=(12,)), ValueError, r'global_blocks \[12\]'),
    (dict(init_cfg=dict(type='Pretrained')), ValueError,
     "init_cfg of type 'Pretrained' needs a 'checkpoint'"),
])
def test_bad_config_values(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        build(**kwargs)
