"""Tests of HieraLayerDecayOptimizerConstructor (layer-wise lr decay over a Hiera trunk).

A small fake detector with HieraBackbone's parameter naming stands in for the real model:
``backbone.trunk.{patch_embed.proj, pos_embed, blocks.N.*}``, ``backbone.trunk.stage_ends``,
``backbone.out_norms.stage1..4``, ``neck.*``, ``head.*``.
"""
import logging
import math
import uuid

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor

from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from hiera_mm.mmdet import HieraLayerDecayOptimizerConstructor, get_hiera_layer_id

DIM = 8
STAGE_ENDS = [0, 2, 4, 5]  # depths [1, 2, 2, 1]
L = 6
BASE_LR = 1e-4
BASE_WD = 0.1


class FakeBlock(nn.Module):

    def __init__(self, dim=DIM):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, 3 * dim)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, 2 * dim)


class FakeTrunk(nn.Module):

    def __init__(self):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, DIM, 4, 4)
        self.pos_embed = nn.Parameter(torch.zeros(1, 16, DIM))
        self.blocks = nn.ModuleList(FakeBlock() for _ in range(L))
        self.stage_ends = list(STAGE_ENDS)


class FakeBackbone(nn.Module):

    def __init__(self):
        super().__init__()
        self.trunk = FakeTrunk()
        self.out_norms = nn.ModuleDict({f'stage{s}': nn.LayerNorm(DIM) for s in range(1, 5)})


class FakeDetector(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = FakeBackbone()
        self.neck = nn.Module()
        self.neck.conv = nn.Conv2d(DIM, DIM, 1)
        self.neck.dwconv = nn.Conv2d(DIM, DIM, 3, padding=1, groups=DIM)
        self.head = nn.Module()
        self.head.fc = nn.Linear(DIM, 4)


class Wrapper(nn.Module):
    """Stands in for MMDistributedDataParallel: the detector sits in ``.module``."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def expected_layer_id(name):
    if name.startswith(('backbone.trunk.patch_embed.', 'backbone.trunk.pos_embed')):
        return 0
    if name.startswith('backbone.trunk.blocks.'):
        return int(name.split('.')[3]) + 1
    if name.startswith('backbone.out_norms.stage'):
        stage = int(name.split('.')[2][len('stage'):])
        return STAGE_ENDS[stage - 1] + 2
    return L + 1


def build(paramwise_cfg, model, constructor='HieraLayerDecayOptimizerConstructor', **opt):
    optimizer = dict(type='AdamW', lr=BASE_LR, weight_decay=BASE_WD)
    optimizer.update(opt)
    builder = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type=constructor,
             optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=optimizer),
             paramwise_cfg=paramwise_cfg))
    return builder(model)


def settings_by_param(optim_wrapper):
    """id(param) -> the param group holding it (fails if a param is in two groups)."""
    out = {}
    for group in optim_wrapper.optimizer.param_groups:
        for p in group['params']:
            assert id(p) not in out, 'parameter in more than one group'
            out[id(p)] = group
    return out


CONFIG_CFG = dict(layer_decay_rate=0.7, norm_decay_mult=0.,
                  custom_keys={'pos_embed': dict(decay_mult=0.), 'neck': dict(lr_mult=2.)})


# ------------------------------------------------------------------ get_hiera_layer_id


@pytest.mark.parametrize('name, layer_id', [
    ('backbone.trunk.patch_embed.proj.weight', 0),
    ('backbone.trunk.patch_embed.proj.bias', 0),
    ('backbone.trunk.pos_embed', 0),
    ('backbone.trunk.pos_embed_window', 0),
    ('backbone.trunk.pos_embed_spatial', 0),
    ('backbone.trunk.blocks.0.norm1.weight', 1),
    ('backbone.trunk.blocks.1.attn.qkv.weight', 2),
    ('backbone.trunk.blocks.5.mlp.fc1.bias', 6),
    ('backbone.out_norms.stage1.weight', 2),  # stage 1 ends at block 0 (layer 1)
    ('backbone.out_norms.stage2.bias', 4),  # stage 2 ends at block 2 (layer 3)
    ('backbone.out_norms.stage3.weight', 6),
    ('backbone.out_norms.stage4.weight', 7),  # last stage -> L + 1
    ('backbone.trunk.norm.weight', 7),
    ('backbone.trunk.head.projection.weight', 7),
    ('backbone.some_adapter.weight', 7),
    ('neck.conv.weight', 7),
    ('head.fc.bias', 7),
    ('module.backbone.trunk.blocks.3.attn.qkv.weight', 4),  # DDP prefix is ignored
    ('module.backbone.trunk.pos_embed', 0),
    ('backbone.trunk.blocks_extra.weight', 7),  # only `blocks.<int>.` is a block
])
def test_get_hiera_layer_id(name, layer_id):
    assert get_hiera_layer_id(name, L, STAGE_ENDS) == layer_id


def test_get_hiera_layer_id_real_depths():
    stage_ends = [0, 2, 9, 11]  # Hiera-T / -S style depths [1, 2, 7, 2]
    assert get_hiera_layer_id('backbone.trunk.blocks.11.norm1.weight', 12, stage_ends) == 12
    assert get_hiera_layer_id('backbone.out_norms.stage3.weight', 12, stage_ends) == 11
    assert get_hiera_layer_id('backbone.out_norms.stage4.weight', 12, stage_ends) == 13
    assert get_hiera_layer_id('neck.lateral_convs.0.conv.weight', 12, stage_ends) == 13


def test_get_hiera_layer_id_out_of_range():
    with pytest.raises(ValueError, match='block 6'):
        get_hiera_layer_id('backbone.trunk.blocks.6.norm1.weight', L, STAGE_ENDS)
    with pytest.raises(ValueError, match='stage 5'):
        get_hiera_layer_id('backbone.out_norms.stage5.weight', L, STAGE_ENDS)


def test_every_param_of_fake_model_gets_expected_id():
    for name, _ in FakeDetector().named_parameters():
        assert get_hiera_layer_id(name, L, STAGE_ENDS) == expected_layer_id(name), name


# ------------------------------------------------------------------ constructor


def test_registered_in_mmdet_registry():
    assert OPTIM_WRAPPER_CONSTRUCTORS.get(
        'HieraLayerDecayOptimizerConstructor') is HieraLayerDecayOptimizerConstructor
    assert issubclass(HieraLayerDecayOptimizerConstructor, DefaultOptimWrapperConstructor)


def test_lr_and_weight_decay_per_param():
    model = FakeDetector()
    rate = CONFIG_CFG['layer_decay_rate']
    ow = build(dict(CONFIG_CFG), model)
    groups = settings_by_param(ow)
    for name, p in model.named_parameters():
        group = groups[id(p)]
        layer_id = expected_layer_id(name)
        scale = rate ** (L + 1 - layer_id)
        lr_mult = 2. if name.startswith('neck.') else 1.
        assert group['layer_id'] == layer_id, name
        assert math.isclose(group['lr_scale'], scale), name
        assert math.isclose(group['lr'], BASE_LR * lr_mult * scale, rel_tol=1e-9), name
        if 'norm' in name or name == 'backbone.trunk.pos_embed':
            assert group['weight_decay'] == 0., name
        else:  # linear / conv weights and biases keep the base decay
            assert group['weight_decay'] == BASE_WD, name
    # spot checks with literal numbers
    p = model.backbone.trunk.patch_embed.proj.weight
    assert math.isclose(groups[id(p)]['lr'], BASE_LR * 0.7 ** 7)
    p = model.head.fc.weight
    assert math.isclose(groups[id(p)]['lr'], BASE_LR)
    p = model.neck.conv.weight
    assert math.isclose(groups[id(p)]['lr'], 2 * BASE_LR)


def test_every_group_is_uniform_and_every_param_appears_once():
    model = FakeDetector()
    ow = build(dict(CONFIG_CFG), model)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = []
    for group in ow.optimizer.param_groups:
        assert {'layer_id', 'lr_scale', 'lr', 'weight_decay'} <= set(group)
        for p in group['params']:
            assert get_hiera_layer_id(names[id(p)], L, STAGE_ENDS) == group['layer_id']
            seen.append(id(p))
    assert sorted(seen) == sorted(id(p) for p in model.parameters())
    # groups with identical settings are merged: far fewer groups than tensors
    assert len(ow.optimizer.param_groups) < len(list(model.parameters()))
    # top layer first, so the `lr` mmengine logs (group 0) is not the patch embedding's
    layer_ids = [g['layer_id'] for g in ow.optimizer.param_groups]
    assert layer_ids == sorted(layer_ids, reverse=True) and layer_ids[0] == L + 1
    assert ow.get_lr()['lr'][0] == BASE_LR


def test_frozen_params_handled_like_default():
    def frozen_model():
        torch.manual_seed(0)
        model = FakeDetector()
        for p in model.backbone.trunk.patch_embed.parameters():
            p.requires_grad_(False)
        model.backbone.trunk.pos_embed.requires_grad_(False)
        return model

    model = frozen_model()
    cfg = dict(CONFIG_CFG)
    cfg.pop('layer_decay_rate')
    ref_model = frozen_model()
    ref = build(cfg, ref_model, constructor='DefaultOptimWrapperConstructor')
    ow = build(dict(CONFIG_CFG), model)
    ref_names = {n for g in ref.optimizer.param_groups for n, q in ref_model.named_parameters()
                 if any(q is x for x in g['params'])}
    names = {n for g in ow.optimizer.param_groups for n, q in model.named_parameters()
             if any(q is x for x in g['params'])}
    assert names == ref_names  # same parameters held by the optimizer
    groups = settings_by_param(ow)
    for p in model.backbone.trunk.patch_embed.parameters():
        assert not p.requires_grad
    assert 'backbone.trunk.blocks.0.attn.qkv.weight' in names
    # mmengine 0.10 leaves frozen params out when paramwise_cfg is given; ours follows it
    frozen = {n for n, q in model.named_parameters() if not q.requires_grad}
    assert frozen == {'backbone.trunk.patch_embed.proj.weight',
                      'backbone.trunk.patch_embed.proj.bias', 'backbone.trunk.pos_embed'}
    assert (frozen & names) == (frozen & ref_names)
    # trainable params are still decayed as usual
    p = model.backbone.trunk.blocks[0].attn.qkv.weight
    assert math.isclose(groups[id(p)]['lr'], BASE_LR * 0.7 ** (L + 1 - 1))


@pytest.mark.parametrize('paramwise_cfg', [
    dict(),
    dict(norm_decay_mult=0.),
    dict(norm_decay_mult=0., custom_keys={'pos_embed': dict(decay_mult=0.),
                                          'neck': dict(lr_mult=2.)}),
    dict(bias_lr_mult=2., bias_decay_mult=0.),
    dict(flat_decay_mult=0.),
    dict(dwconv_decay_mult=0.5),
    dict(custom_keys={'blocks.2': dict(lr_mult=0.5, decay_mult=3.),
                      'backbone': dict(lr_mult=0.1)}),
])
@pytest.mark.parametrize('rate', [1.0, 0.8, None])
def test_matches_default_constructor_times_scale(paramwise_cfg, rate):
    """lr = default lr * rate ** (L + 1 - id), weight decay = default weight decay."""
    torch.manual_seed(0)
    model = FakeDetector()
    ref = build(dict(paramwise_cfg), model, constructor='DefaultOptimWrapperConstructor')
    cfg = dict(paramwise_cfg)
    if rate is not None:
        cfg['layer_decay_rate'] = rate
    ow = build(cfg, model)
    eff_rate = 1.0 if rate is None else rate
    ref_groups, groups = settings_by_param(ref), settings_by_param(ow)
    assert set(ref_groups) == set(groups)
    for name, p in model.named_parameters():
        scale = eff_rate ** (L + 1 - expected_layer_id(name))
        assert math.isclose(groups[id(p)]['lr'], ref_groups[id(p)]['lr'] * scale,
                            rel_tol=1e-9), name
        assert groups[id(p)]['weight_decay'] == ref_groups[id(p)]['weight_decay'], name
        if eff_rate == 1.0:
            assert groups[id(p)]['lr'] == ref_groups[id(p)]['lr'], name


def test_custom_keys_extra_fields_are_kept():
    model = FakeDetector()
    ow = build(dict(layer_decay_rate=0.5, custom_keys={'head': dict(lr_mult=3.)}), model)
    group = settings_by_param(ow)[id(model.head.fc.weight)]
    assert group['lr_mult'] == 3.
    assert math.isclose(group['lr'], 3 * BASE_LR)


def test_bypass_duplicate():
    model = FakeDetector()
    model.head.fc2 = nn.Linear(DIM, 4)
    model.head.fc2.weight = model.head.fc.weight  # shared parameter
    ow = build(dict(layer_decay_rate=0.9, bypass_duplicate=True), model)
    ids = [id(p) for g in ow.optimizer.param_groups for p in g['params']]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(id(p) for p in model.parameters())


def test_ddp_style_wrapper_is_unwrapped():
    torch.manual_seed(0)
    model = FakeDetector()
    ow = build(dict(CONFIG_CFG), Wrapper(model))
    groups = settings_by_param(ow)
    p = model.backbone.trunk.blocks[2].mlp.fc1.weight
    assert groups[id(p)]['layer_id'] == 3
    assert math.isclose(groups[id(p)]['lr'], BASE_LR * 0.7 ** (L + 1 - 3))


@pytest.mark.parametrize('rate', [0, 0.0, -0.5, 1.01, 2, float('nan'), float('inf'), '0.7',
                                  None, True])
def test_bad_rate_raises(rate):
    with pytest.raises(ValueError, match=r'layer_decay_rate must be a float in \(0, 1\]'):
        build(dict(layer_decay_rate=rate), FakeDetector())


def test_rate_is_popped_without_mutating_config():
    cfg = dict(CONFIG_CFG)
    builder = HieraLayerDecayOptimizerConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=BASE_WD)),
        cfg)
    assert 'layer_decay_rate' not in builder.paramwise_cfg
    assert cfg['layer_decay_rate'] == 0.7
    assert builder.layer_decay_rate == 0.7


def test_model_without_trunk_blocks_raises():
    model = nn.Module()
    model.backbone = nn.Module()
    model.backbone.conv = nn.Conv2d(3, 4, 3)
    model.head = nn.Linear(4, 2)
    with pytest.raises(ValueError, match=r'HieraBackbone.*backbone\.trunk\.blocks'):
        build(dict(layer_decay_rate=0.7), model)
    with pytest.raises(ValueError, match='HieraBackbone'):
        build(dict(layer_decay_rate=0.7), nn.Linear(2, 2))


def test_missing_stage_ends_raises():
    model = FakeDetector()
    del model.backbone.trunk.stage_ends
    with pytest.raises(ValueError, match='stage_ends'):
        build(dict(layer_decay_rate=0.7), model)


def test_optimizer_steps():
    model = FakeDetector()
    ow = build(dict(CONFIG_CFG), model)
    x = torch.randn(2, 3, 16, 16)
    feat = model.backbone.trunk.patch_embed.proj(x).flatten(2).transpose(1, 2)
    feat = feat + model.backbone.trunk.pos_embed
    for blk in model.backbone.trunk.blocks:
        feat = feat + blk.mlp.fc1(blk.norm1(feat))[..., :DIM] + blk.attn.qkv(feat)[..., :DIM]
    loss = model.head.fc(model.backbone.out_norms['stage4'](feat)).square().mean()
    before = model.backbone.trunk.patch_embed.proj.weight.detach().clone()
    ow.update_params(loss)
    assert not torch.equal(before, model.backbone.trunk.patch_embed.proj.weight)


def test_summary_is_logged_through_mmlogger():
    logger = MMLogger.get_instance(f'test_layer_decay_{uuid.uuid4().hex}')
    records = []

    class Collect(logging.Handler):

        def emit(self, record):
            records.append(record.getMessage())

    handler = Collect(level=logging.INFO)
    logger.addHandler(handler)
    try:
        build(dict(CONFIG_CFG), FakeDetector())
    finally:
        logger.removeHandler(handler)
    summary = [r for r in records if r.startswith('HieraLayerDecayOptimizerConstructor')]
    assert len(summary) == 1
    assert 'layer_decay_rate=0.7' in summary[0]
    assert 'layer   0' in summary[0] and f'layer {L + 1:>3}' in summary[0]


def test_real_hiera_trunk_naming():
    """The names of the upstream Hiera implementation map onto the expected layers."""
    from conftest import require
    hiera = require('hiera')
    model = nn.Module()
    model.backbone = nn.Module()
    model.backbone.trunk = hiera.Hiera(embed_dim=16, num_heads=1, stages=(1, 2, 3, 1),
                                       q_pool=2, input_size=(64, 64))
    model.backbone.out_norms = nn.ModuleDict(
        {f'stage{s}': nn.LayerNorm(16 * 2 ** (s - 1)) for s in range(1, 5)})
    trunk = model.backbone.trunk
    num_blocks = len(trunk.blocks)
    assert list(trunk.stage_ends) == [0, 2, 5, 6]
    ow = build(dict(layer_decay_rate=0.5), model)
    groups = settings_by_param(ow)
    for name, p in model.named_parameters():
        layer_id = groups[id(p)]['layer_id']
        if name.startswith(('backbone.trunk.patch_embed', 'backbone.trunk.pos_embed')):
            assert layer_id == 0, name
        elif name.startswith('backbone.trunk.blocks.'):
            assert layer_id == int(name.split('.')[3]) + 1, name
        elif name.startswith('backbone.out_norms.'):
            assert layer_id == trunk.stage_ends[int(name.split('.')[2][5:]) - 1] + 2, name
        else:
            assert layer_id == num_blocks + 1, name
        assert math.isclose(groups[id(p)]['lr'], BASE_LR * 0.5 ** (num_blocks + 1 - layer_id))


def test_built_from_config_like_the_runner():
    """The config of the brief, as the Runner builds it (ConfigDict, default scope mmdet)."""
    from mmengine.config import ConfigDict
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    cfg = ConfigDict(
        type='OptimWrapper', constructor='HieraLayerDecayOptimizerConstructor',
        optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=BASE_WD),
        paramwise_cfg=dict(CONFIG_CFG))
    model = FakeDetector()
    with DefaultScope.overwrite_default_scope('mmdet'):
        ow = build_optim_wrapper(model, cfg)
    groups = settings_by_param(ow)
    assert math.isclose(groups[id(model.backbone.trunk.pos_embed)]['lr'], BASE_LR * 0.7 ** 7)
    assert groups[id(model.backbone.trunk.pos_embed)]['weight_decay'] == 0.
    assert math.isclose(groups[id(model.neck.conv.weight)]['lr'], 2 * BASE_LR)
