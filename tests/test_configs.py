"""Every config under configs/ (found by glob, so new ones are covered): it loads, states what a
Hiera config must state, builds, trains one step and predicts.

To run on CPU in seconds, each detector is built with its backbone cut to one block per stage
(the config's width and heads kept) and no pretrained weights, and fed two small images. The
optimizer comes from the config through mmengine's ``build_optim_wrapper``, so the constructor
and ``paramwise_cfg`` (layer decay, custom keys, norm decay) are exercised as in training; only
``AmpOptimWrapper`` becomes ``OptimWrapper`` (mmengine's AMP wrapper needs a GPU and the model
stays on the CPU here).
"""
import copy
import glob
import math
import os
import re

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from conftest import IMAGENET_MEAN, IMAGENET_STD, ROOT, iter_dicts

CONFIG_DIR = os.path.join(ROOT, 'configs')
CONFIGS = sorted(
    path for path in glob.glob(os.path.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    if '_base_' not in os.path.relpath(path, CONFIG_DIR).split(os.sep)
    # Detectron2's LazyConfigs have their own test (tests/test_detectron2_configs.py), and so
    # have the MMSegmentation configs (tests/test_mmseg.py) and mmdeploy's deploy configs
    # (tests/test_deploy_openmmlab.py).
    and os.path.relpath(path, CONFIG_DIR).split(os.sep)[0] not in ('detectron2', 'mmseg',
                                                                   'deploy'))
CONFIG_IDS = [os.path.relpath(path, CONFIG_DIR) for path in CONFIGS]

SYNC_NORMS = {'SyncBN', 'MMSyncBN', 'TorchSyncBN', 'NaiveSyncBN'}
# size code in a config name -> HieraBackbone arch (also the size in SAM 2.1 file names)
SIZES = {'t': 'tiny', 's': 'small', 'b': 'base', 'b-plus': 'base_plus', 'l': 'large',
         'h': 'huge'}
# Train on two images of different shapes (multiples of 32 and not: exercises batch padding);
# LSJ's fixed-size batch pad is shrunk to this canvas (it is 1024 x 1024 in the configs).
TRAIN_SHAPES = [(3, 96, 128), (3, 110, 90)]
SMALL_CANVAS = (128, 160)


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """The tiny detectors run many small ops, where a second intra-op thread gains little; on a
    busy 2-core machine two spinning threads per process made this file 5-9x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_configs_found():
    assert len(CONFIGS) >= 20, f'expected the model zoo under {CONFIG_DIR}, found {CONFIG_IDS}'


def test_hiera_bases_hold_variables_only():
    """configs/_base_/hiera/*.py are listed beside an mmdet base (and beside each other), and
    mmengine refuses two bases that define the same key: each defines only its own ``hiera_*``
    variables; hiera.py also custom_imports and custom_hooks, which no mmdet base defines."""
    from mmengine.config import Config

    paths = sorted(glob.glob(os.path.join(CONFIG_DIR, '_base_', 'hiera', '*.py')))
    assert paths, 'no variable bases under configs/_base_/hiera'
    owner = {}
    for path in paths:
        name = os.path.basename(path)
        allowed = {'custom_imports', 'custom_hooks'} if name == 'hiera.py' else set()
        for key in Config.fromfile(path).to_dict():
            assert key.startswith('hiera_') or key in allowed, f'{name} defines {key!r}'
            assert key not in owner, f'{key!r} is defined in {owner.get(key)} and {name}'
            owner[key] = name


def expected_backbone(config_path):
    """(arch, init checkpoint) a config's name promises: ``..._hiera-[sam2-]<size>_...``.

    IN1K-finetuned hub weights by default; MAE weights for the LSJ (ViTDet/paper) recipe; the
    released SAM 2.1 file for ``sam2`` configs.
    """
    name = os.path.basename(config_path)
    match = re.search(r'_hiera-(?P<sam2>sam2-)?(?P<size>b-plus|t|s|b|l|h)_', name)
    if match is None:
        pytest.fail(f'{name}: config names must say the backbone as `_hiera-<size>_` or '
                    f'`_hiera-sam2-<size>_` with <size> in {sorted(SIZES)}')
    size = SIZES[match['size']]
    if match['sam2']:
        return f'sam2_{size}', f'checkpoints/sam2.1_hiera_{size}.pt'
    hub = size.replace('_', '-')
    if 'lsj' in name:
        return size, f'hf://facebook/hiera-{hub}-224-mae-hf'
    return size, f'hf://facebook/hiera-{hub}-224-hf'


def shrink(cfg):
    """Make the detector cheap on CPU without changing how it is put together: one block per
    Hiera stage (same widths/heads/attention layout) and random init; a small LSJ canvas; fewer
    sampled RoIs, proposals, queries and transformer layers (the head cost on CPU is
    proportional to them)."""
    from hiera_mm.archs import ARCH_SETTINGS

    backbone = cfg.model.backbone
    arch = backbone.arch
    settings = dict(ARCH_SETTINGS[arch]) if isinstance(arch, str) else dict(arch)
    settings['depths'] = (1, 1, 1, 1)
    if settings.get('global_blocks'):
        settings['global_blocks'] = (2,)  # the one stage-3 block (SAM2's are deeper)
    backbone.arch = settings
    backbone.init_cfg = None
    for augment in cfg.model.data_preprocessor.get('batch_augments') or []:
        if 'size' in augment:
            augment['size'] = SMALL_CANVAS
    model = cfg.model
    if 'num_queries' in model:  # DETR-like: top-k over the encoder tokens needs k <= tokens
        model.num_queries = 100
    for part in ('encoder', 'decoder'):  # DETR-like: 2 layers (iterative refinement kept)
        if isinstance(model.get(part), dict) and 'num_layers' in model[part]:
            model[part].num_layers = min(model[part].num_layers, 2)
    for stage_cfg in ('train_cfg', 'test_cfg'):
        stage = model.get(stage_cfg) or {}
        rcnn = stage.get('rcnn')
        for rcnn_stage in rcnn if isinstance(rcnn, list) else [rcnn] if rcnn else []:
            if 'sampler' in rcnn_stage:
                rcnn_stage.sampler.num = 32
        for key in ('rpn_proposal', 'rpn'):
            if isinstance(stage.get(key), dict) and 'max_per_img' in stage[key]:
                stage[key].nms_pre = 200
                stage[key].max_per_img = 100


def demo_inputs(num_images, num_classes, with_mask, seed):
    from mmdet.testing import demo_mm_inputs

    torch.manual_seed(seed)
    np.random.seed(seed)
    shapes = TRAIN_SHAPES[:num_images]
    return demo_mm_inputs(batch_size=num_images, image_shapes=shapes,
                          num_items=[3, 2][:num_images], num_classes=num_classes,
                          with_mask=with_mask)


@pytest.mark.parametrize('config_path', CONFIGS, ids=CONFIG_IDS)
def test_config(config_path):
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules

    import hiera_mm.mmdet  # noqa: F401  (registers into mmdet)

    register_all_modules()  # default scope 'mmdet', as the runner sets from the config
    cfg = Config.fromfile(config_path)

    # ---- what every config must state ------------------------------------------------------
    imports = cfg.get('custom_imports', {})
    assert 'hiera_mm.mmdet' in imports.get('imports', []), 'custom_imports must import hiera_mm.mmdet'
    # every launcher (ours, mmdet's tools, mim, Runner.from_cfg) gets the same hooks from here
    assert [h['type'] for h in cfg.custom_hooks][-2:] == ['FiniteLossHook', 'TrustRunCheckpointsHook']
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert imports.get('allow_failed_imports') is False, 'a failed hiera_mm import must be fatal'

    pre = cfg.model.data_preprocessor
    assert pre.get('bgr_to_rgb') is True, 'Hiera expects RGB: data_preprocessor.bgr_to_rgb=True'
    assert list(pre.mean) == pytest.approx(IMAGENET_MEAN), 'ImageNet mean expected'
    assert list(pre.std) == pytest.approx(IMAGENET_STD), 'ImageNet std expected'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for transform in iter_dicts(cfg[loader].dataset):
            assert transform.get('type') != 'Normalize', \
                f'{loader}: normalisation belongs to the data_preprocessor, not the pipeline'
            if transform.get('type') == 'LoadImageFromFile':
                # bgr_to_rgb=True assumes the loader's default BGR decoding
                assert transform.get('channel_order', 'bgr') == 'bgr'

    arch, checkpoint = expected_backbone(config_path)
    backbone_cfg = cfg.model.backbone
    assert backbone_cfg.type == 'HieraBackbone'
    assert backbone_cfg.arch == arch, f'name says {arch!r}, config builds {backbone_cfg.arch!r}'
    assert backbone_cfg.init_cfg == dict(type='Pretrained', checkpoint=checkpoint), \
        f'init_cfg {backbone_cfg.init_cfg}: the name promises {checkpoint!r}'
    # a top-level `pretrained` (mmdet's convention; also inherited from Swin bases) must agree
    assert cfg.get('pretrained', checkpoint) == checkpoint, 'stale `pretrained` in the config'

    sync = [d['type'] for d in iter_dicts(cfg._cfg_dict.to_dict())
            if isinstance(d.get('type'), str) and d['type'] in SYNC_NORMS]
    assert not sync, f'{sync} in the config: use GN/LN so a single process trains the same'

    # ---- build ------------------------------------------------------------------------------
    shrink(cfg)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())

    out_channels = list(model.backbone.out_channels)
    assert 'neck' in cfg.model, 'every zoo config has a neck'
    assert list(cfg.model.neck.in_channels) == out_channels, \
        f'neck.in_channels {list(cfg.model.neck.in_channels)} != backbone out {out_channels}'

    ow_cfg = copy.deepcopy(cfg.optim_wrapper)
    assert ow_cfg.get('type', 'OptimWrapper') in ('OptimWrapper', 'AmpOptimWrapper')
    if ow_cfg.get('type') == 'AmpOptimWrapper':
        ow_cfg.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            ow_cfg.pop(key, None)
    assert ow_cfg.optimizer.type == 'AdamW'
    optim_wrapper = build_optim_wrapper(model, ow_cfg)
    check_param_groups(model, optim_wrapper, ow_cfg)

    # ---- one training step --------------------------------------------------------------------
    num_classes = max(d['num_classes'] for d in iter_dicts(cfg.model.to_dict())
                      if 'num_classes' in d)
    with_mask = 'mask_head' in cfg.model.get('roi_head', {})
    data = demo_inputs(2, num_classes, with_mask, seed=0)
    before = {n: p.detach().clone() for n, p in model.backbone.named_parameters()}
    without_grad = []
    step = optim_wrapper.step

    def recording_step(**kwargs):
        without_grad.extend(n for n, p in model.named_parameters()
                            if p.requires_grad and p.grad is None)
        return step(**kwargs)

    optim_wrapper.step = recording_step
    model.train()
    log_vars = model.train_step(data, optim_wrapper)
    assert math.isfinite(float(log_vars['loss'])), log_vars
    assert all(math.isfinite(float(v)) for v in log_vars.values()), log_vars
    # DDP (find_unused_parameters=False, mmengine's default) fails on any such parameter
    assert not without_grad, f'trainable parameters without a gradient: {without_grad}'
    unchanged = [n for n, p in model.backbone.named_parameters()
                 if p.requires_grad and torch.equal(p.detach(), before[n])]
    assert len(unchanged) < len(before), 'no backbone parameter changed in the training step'
    assert not unchanged, f'backbone parameters the step did not update: {unchanged}'

    # ---- prediction ---------------------------------------------------------------------------
    model.eval()
    with torch.no_grad():
        outputs = model.val_step(demo_inputs(1, num_classes, with_mask, seed=1))
    assert len(outputs) == 1 and isinstance(outputs[0], DetDataSample)
    pred = outputs[0].pred_instances
    for key in ('bboxes', 'scores', 'labels') + (('masks',) if with_mask else ()):
        assert key in pred, f'pred_instances lacks {key}'
    assert pred.bboxes.shape[-1] == 4 and len(pred.scores) == len(pred.bboxes)


def check_param_groups(model, optim_wrapper, ow_cfg):
    """No weight decay on norm layers and position embeddings (anywhere); the backbone's lr
    multiplier of the config (custom key 'backbone') reaches every backbone tensor; layer decay
    scales the backbone's lr from the patch embedding up."""
    group_of = {id(p): g for g in optim_wrapper.optimizer.param_groups for p in g['params']}
    base_lr, base_wd = ow_cfg.optimizer.lr, ow_cfg.optimizer.weight_decay
    paramwise = ow_cfg.get('paramwise_cfg', {})
    custom_keys = paramwise.get('custom_keys', {})
    backbone_lr_mult = custom_keys.get('backbone', {}).get('lr_mult', 1.0)
    # mmengine gives a parameter the settings of the longest custom key in its name
    longest_first = sorted(sorted(custom_keys), key=len, reverse=True)
    norm_types = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)
    matched = {}  # custom key -> parameter names it decides
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            full = f'{module_name}.{name}'
            group = group_of[id(param)]
            key = next((k for k in longest_first if k in full), None)
            matched.setdefault(key, []).append(full)
            if isinstance(module, norm_types) or 'pos_embed' in name:
                assert group['weight_decay'] == 0, f'{full} is decayed'
            elif param.ndim > 1:
                assert group['weight_decay'] == pytest.approx(base_wd), full
            lr = group['lr'] / group.get('lr_scale', 1.0)
            if module_name.startswith('backbone.'):
                assert lr == pytest.approx(base_lr * backbone_lr_mult), full
            else:
                mult = custom_keys[key].get('lr_mult', 1.0) if key else 1.0
                assert lr == pytest.approx(base_lr * mult), full
    # a key that sets a backbone lr (e.g. DINO's backbone x 0.1) must not reach the neck/heads
    for key, names in matched.items():
        if key is None or custom_keys[key].get('lr_mult', 1.0) == 1.0:
            continue
        owners = {n.startswith('backbone.') for n in names}
        assert len(owners) == 1, f'custom key {key!r} sets the lr of backbone and other ' \
            f"parameters alike: {[n for n in names if not n.startswith('backbone.')][:5]}"

    if ow_cfg.get('constructor') == 'HieraLayerDecayOptimizerConstructor':
        rate = paramwise['layer_decay_rate']
        num_blocks = len(model.backbone.trunk.blocks)
        patch = group_of[id(model.backbone.trunk.patch_embed.proj.weight)]
        assert patch['lr_scale'] == pytest.approx(rate ** (num_blocks + 1))
        head = [g for g in optim_wrapper.optimizer.param_groups
                if g['lr'] == pytest.approx(base_lr) and g['lr_scale'] == 1.0]
        assert head, 'the neck and heads should train at the configured lr'


def load_metafiles():
    entries = {}
    for path in sorted(glob.glob(os.path.join(CONFIG_DIR, '*', 'metafile.yml'))):
        with open(path) as f:
            meta = yaml.safe_load(f)
        collections = {c['Name'] for c in meta.get('Collections', [])}
        for model in meta['Models']:
            assert model['In Collection'] in collections, (path, model['Name'])
            assert model['Name'] not in entries, f"{model['Name']} listed twice"
            entries[model['Name']] = dict(model, metafile=path)
    return entries


def test_metafiles_list_every_config():
    """A folder with a metafile.yml (the model zoo) lists each of its configs there, and every
    entry names an existing config of that folder."""
    entries = load_metafiles()
    listed = {os.path.normpath(os.path.join(ROOT, m['Config'])) for m in entries.values()}
    missing = [c for c in CONFIG_IDS if os.path.join(CONFIG_DIR, c) not in listed
               and os.path.isfile(os.path.join(CONFIG_DIR, os.path.dirname(c), 'metafile.yml'))]
    assert not missing, f'configs missing from the metafile.yml of their folder: {missing}'
    for name, model in entries.items():
        config = os.path.join(ROOT, model['Config'])
        assert os.path.isfile(config), f'{name}: no such config {model["Config"]}'
        assert name == os.path.splitext(os.path.basename(config))[0]
        assert os.path.dirname(config) == os.path.dirname(model['metafile']), \
            f'{name}: listed in {model["metafile"]}, not in the metafile of its folder'
        for result in model.get('Results', []):
            assert result['Dataset'] == 'COCO' and result['Metrics']
