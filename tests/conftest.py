"""Shared fixtures: small Hiera checkpoints made here (no hub access), tiny detectors."""
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
sys.path.insert(0, os.path.join(ROOT, 'tools', 'dev'))
# The normalisation Hiera was trained with, as configs must state it: the image_mean
# [0.485, 0.456, 0.406] and image_std [0.229, 0.224, 0.225] of the facebook/hiera-*-224-hf
# preprocessor_config.json (and FAIR's hiera), on the 0-255 scale of mmdet's data preprocessor.
IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]
# No test may reach a model hub; loading code must go through the real cache logic.
os.environ['HF_HUB_OFFLINE'] = '1'
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def hf_config(embed_dim=96, depths=(1, 2, 7, 2), num_heads=(1, 2, 4, 8), image_size=(224, 224),
              **extra):
    from transformers import HieraConfig
    return HieraConfig(embed_dim=embed_dim, depths=list(depths), num_heads=list(num_heads),
                       image_size=list(image_size), **extra)


def randomize_(model, seed=0, std=0.05):
    """Non-trivial random weights (norm gains and biases included) so parity cannot pass by luck."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            base = 1.0 if name.endswith('weight') and p.ndim == 1 else 0.0
            p.copy_(base + std * torch.randn(p.shape, generator=gen))
    return model


@pytest.fixture(scope='session')
def make_hf_checkpoint(tmp_path_factory):
    """Factory: save_pretrained folder of a random HF Hiera model; returns (folder, model)."""
    cache = {}

    def make(model_cls='HieraModel', seed=0, **cfg):
        key = (model_cls, seed, tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v)
                                             for k, v in cfg.items())))
        if key not in cache:
            import transformers
            model = getattr(transformers, model_cls)(hf_config(**cfg))
            randomize_(model, seed).eval()
            folder = tmp_path_factory.mktemp(model_cls)
            model.save_pretrained(folder)
            cache[key] = (str(folder), model)
        return cache[key]

    return make


def iter_dicts(obj):
    """Every dict in a nested config (dicts, lists and tuples), depth first, the outer one first."""
    if isinstance(obj, dict):
        yield obj
        for value in obj.values():
            yield from iter_dicts(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from iter_dicts(value)


# The custom hooks every hiera_mm config declares.
RUN_HOOKS = [dict(type='FiniteLossHook'), dict(type='TrustRunCheckpointsHook')]
TINY_RETINANET_BASE = os.path.join(ROOT, 'configs', 'retinanet', 'retinanet_hiera-t_fpn_1x_coco.py')


def write_tiny_retinanet_config(folder, data_root, helpers_module, helpers_source, *, max_iters,
                                checkpoint_interval, max_keep_ckpts=-1, hooks=(), extra=''):
    """A tiny RetinaNet Hiera config (inheriting the repo's) for training subprocesses.

    No random flip or shuffling: runs are deterministic, so tests can compare them. The test's
    helper module (hooks etc.) is written beside it and imported through ``custom_imports``.
    """
    folder = str(folder)
    with open(os.path.join(folder, helpers_module + '.py'), 'w') as f:
        f.write(helpers_source)
    text = f'''
_base_ = {TINY_RETINANET_BASE!r}
custom_imports = dict(imports=['hiera_mm.mmdet', {helpers_module!r}], allow_failed_imports=False)
data_root = {data_root.rstrip('/') + '/'!r}
metainfo = dict(classes=('circle', 'triangle', 'rectangle'),
                palette=[(220, 20, 60), (0, 128, 255), (0, 200, 0)])
width = 64
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dim=48, depths=(1, 1, 1, 1),
                            num_heads=(1, 2, 4, 8)),
                  drop_path_rate=0.0, init_cfg=None),
    neck=dict(in_channels=[96, 192, 384], out_channels=width),
    bbox_head=dict(num_classes=3, in_channels=width, feat_channels=width, stacked_convs=2))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, batch_sampler=None,
    # InfiniteSampler(shuffle=False) gives rank r the indices r, r + world_size, ...
    sampler=dict(type='InfiniteSampler', shuffle=False),
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=16), pipeline=train_pipeline))
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
param_scheduler = []
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={max_iters},
                 val_interval=100000)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval={checkpoint_interval}, max_keep_ckpts={max_keep_ckpts}))
log_processor = dict(by_epoch=False, window_size=1)
custom_hooks = {RUN_HOOKS + list(hooks)!r}  # the base's, then the test's
randomness = dict(seed=0)
''' + extra
    path = os.path.join(folder, f'tiny_retinanet_{helpers_module}.py')
    with open(path, 'w') as f:
        f.write(text)
    return path
