"""MMSegmentation integration: every config under configs/mmseg, the separation of the two
frameworks, our tools on segmentation configs (hooks as Runner.from_cfg, two CPU processes).

Each config is built with its backbone cut to one block per stage (widths, heads and attention
layout kept), random init and small heads' sizes where they only cost time (Mask2Former's queries
and decoder layers), then trains one step on two images of at most 128 px and predicts, in whole
and in slide mode. The subprocess tests check what a run imports: an mmseg run never
``hiera_mm.mmdet``, an mmdet run never ``mmseg`` nor ``hiera_mm.mmseg``.
"""
import glob
import json
import math
import os
import os.path as osp
import re
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from conftest import (IMAGENET_MEAN, IMAGENET_STD, ROOT, iter_dicts, run_tool,
                      write_tiny_retinanet_config)

SEG_DIR = osp.join(ROOT, 'configs', 'mmseg')
SEG_CONFIGS = sorted(p for p in glob.glob(osp.join(SEG_DIR, '**', '*.py'), recursive=True)
                     if '_base_' not in osp.relpath(p, SEG_DIR).split(os.sep))
SEG_IDS = [osp.relpath(p, SEG_DIR) for p in SEG_CONFIGS]
TOY_CONFIG = osp.join(SEG_DIR, 'toy', 'upernet_hiera-t_toy.py')
SIZES = {'t': 'tiny', 's': 'small', 'b': 'base', 'b-plus': 'base_plus'}
SAM21_URL = 'https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_{}.pt'
# Two training images of different shapes (one of them padded to the crop by the preprocessor).
TRAIN_SHAPES = [(3, 128, 128), (3, 96, 112)]
CANVAS = (128, 128)


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Many small ops: a second intra-op thread gains little and, on a busy 2-core machine,
    spinning threads slow everything down (see tests/test_configs.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_configs_found():
    names = {osp.basename(p) for p in SEG_CONFIGS}
    for size in ('t', 's', 'b', 'b-plus', 'sam2-t', 'sam2-b-plus'):
        assert f'upernet_hiera-{size}_8xb2-160k_ade20k-512x512.py' in names
    for size in ('t', 'b'):
        assert f'mask2former_hiera-{size}_8xb2-160k_ade20k-512x512.py' in names
    assert 'upernet_hiera-t_4xb2-80k_cityscapes-512x1024.py' in names
    from hiera_mm.configs import list_configs
    shipped = set(list_configs())
    assert {osp.relpath(p, osp.join(ROOT, 'configs')) for p in SEG_CONFIGS} <= shipped


def expected_backbone(path):
    """(arch, init checkpoint) promised by the name: ``..._hiera-[sam2-]<size>_...``."""
    match = re.search(r'_hiera-(?P<sam2>sam2-)?(?P<size>b-plus|t|s|b)_', osp.basename(path))
    assert match, f'{path}: the name must say the backbone as _hiera-[sam2-]<size>_'
    size = SIZES[match['size']]
    if match['sam2']:
        return f'sam2.1_{size}', SAM21_URL.format(size)
    return size, f"hf://facebook/hiera-{size.replace('_', '-')}-224-hf"


def mmseg_base_of(path):
    """The mmseg config a family's file starts from (first ``mmseg::`` base up its chain)."""
    text = open(path).read()
    found = re.search(r"'mmseg::([^']+)'", text)
    if found:
        return found[1]
    parent = re.search(r"_base_ = \[?\s*'(\.\.?/[^']+)'", text)
    return mmseg_base_of(osp.normpath(osp.join(osp.dirname(path), parent[1])))


def shrink(cfg):
    """One block per stage, random init, no stochastic depth, a 128 px canvas; narrower UperNet /
    FCN heads; Mask2Former with fewer queries, decoder layers and sampled points (its cost on CPU
    grows with them)."""
    from hiera_mm.archs import ARCH_SETTINGS
    backbone = cfg.model.backbone
    settings = dict(ARCH_SETTINGS[backbone.arch])
    settings['depths'] = (1, 1, 1, 1)
    if settings.get('global_blocks'):
        settings['global_blocks'] = (2, )
    backbone.arch = settings
    backbone.init_cfg = None
    # Stochastic depth can drop a whole branch for both images of the step: no gradient there
    backbone.drop_path_rate = 0.0
    cfg.model.data_preprocessor.size = CANVAS
    head = cfg.model.decode_head
    if 'channels' in head:  # UperNet's 512 / FCN's 256 channels: the bulk of a CPU step
        head.channels = 64
        if 'auxiliary_head' in cfg.model:
            cfg.model.auxiliary_head.channels = 32
    if head.type == 'Mask2FormerHead':
        head.num_queries = 10
        head.transformer_decoder.num_layers = 2
        head.pixel_decoder.encoder.num_layers = 1
        head.train_cfg.num_points = 1024


def seg_batch(shapes, num_classes, seed):
    """Images and label maps (a few class rectangles, an ignored strip) as a dataloader gives."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for c, h, w in shapes:
        inputs.append(torch.randint(0, 256, (c, h, w), dtype=torch.uint8, generator=gen))
        label = torch.zeros((1, h, w), dtype=torch.long)
        for k in range(1, 4):
            y, x = (int(v) for v in torch.randint(0, h // 2, (2, ), generator=gen))
            label[:, y:y + h // 3, x:x + w // 3] = int(torch.randint(0, num_classes, (1, ),
                                                                     generator=gen))
        label[:, :, -4:] = 255
        sample = SegDataSample(gt_sem_seg=PixelData(data=label))
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def check_param_groups(model, optim_wrapper, cfg):
    """AdamW without weight decay on norms and position embeddings; the backbone at the lr the
    recipe gives it (x 0.1 for Mask2Former); query / level embeddings undecayed; no layer decay."""
    ow = cfg.optim_wrapper
    assert ow.optimizer.type == 'AdamW'
    assert ow.get('constructor', 'DefaultOptimWrapperConstructor') == \
        'DefaultOptimWrapperConstructor', 'no layer-wise decay in the Swin recipes'
    assert 'layer_decay_rate' not in ow.get('paramwise_cfg', {})
    base_lr, base_wd = ow.optimizer.lr, ow.optimizer.weight_decay
    backbone_lr = base_lr * ow.paramwise_cfg.custom_keys.get('backbone', {}).get('lr_mult', 1.0)
    group_of = {id(p): g for g in optim_wrapper.optimizer.param_groups for p in g['params']}
    norm_types = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            full, group = f'{module_name}.{name}', group_of[id(param)]
            if isinstance(module, norm_types) or 'pos_embed' in name or any(
                    key in full for key in ('query_embed', 'query_feat', 'level_embed')):
                assert group['weight_decay'] == 0, f'{full} is decayed'
            elif param.ndim > 1:
                assert group['weight_decay'] == pytest.approx(base_wd), full
            expected = backbone_lr if full.startswith('backbone.') else base_lr
            assert group['lr'] == pytest.approx(expected), full


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=SEG_IDS)
def test_config(path):
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)

    # ---- what every config states --------------------------------------------------------------
    assert cfg.default_scope == 'mmseg'
    assert mmseg_base_of(path).split('/')[0] in ('swin', 'mask2former', 'upernet')
    imports = cfg.custom_imports['imports']
    assert imports[:2] == ['mmseg', 'hiera_mm.mmseg'], imports
    assert not any(i.startswith('hiera_mm.mmdet') for i in imports)
    assert cfg.custom_imports['allow_failed_imports'] is False
    assert [h['type'] for h in cfg.custom_hooks][-2:] == ['FiniteLossHook',
                                                          'TrustRunCheckpointsHook']
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    pre = cfg.model.data_preprocessor
    assert pre.bgr_to_rgb is True
    assert list(pre.mean) == pytest.approx(IMAGENET_MEAN)
    assert list(pre.std) == pytest.approx(IMAGENET_STD)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert all(t.get('type') != 'Normalize' for t in iter_dicts(cfg[loader].dataset))
    # mmseg's test.py --tta takes both from the config (mmseg's dataset / runtime bases)
    assert cfg.tta_model.type == 'SegTTAModel'
    assert cfg.tta_pipeline[-1].type == 'TestTimeAug'
    arch, checkpoint = expected_backbone(path)
    backbone_cfg = cfg.model.backbone
    assert backbone_cfg.type == 'HieraBackbone' and backbone_cfg.arch == arch
    assert backbone_cfg.init_cfg == dict(type='Pretrained', checkpoint=checkpoint)
    for stale in ('checkpoint_file', 'pretrained'):  # the Swin bases' variables, if kept
        assert cfg.get(stale) in (None, checkpoint), f'stale `{stale}`: {cfg.get(stale)}'
    assert cfg.model.get('pretrained') is None

    # ---- build ---------------------------------------------------------------------------------
    shrink(cfg)
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))  # as the runner does in one process
    model.init_weights()
    widths = list(model.backbone.out_channels)
    assert list(cfg.model.decode_head.in_channels) == widths
    if 'auxiliary_head' in cfg.model:
        aux = cfg.model.auxiliary_head
        assert aux.in_channels == widths[aux.in_index]
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    check_param_groups(model, optim_wrapper, cfg)

    # ---- one training step ---------------------------------------------------------------------
    num_classes = cfg.model.decode_head.num_classes
    before = {n: p.detach().clone() for n, p in model.backbone.named_parameters()}
    without_grad, zero_grad = [], []
    step = optim_wrapper.step

    def recording_step(**kwargs):
        for n, p in model.named_parameters():
            if p.requires_grad and p.grad is None:
                without_grad.append(n)
            elif p.requires_grad and n.startswith('backbone.') and not p.grad.any():
                zero_grad.append(n)
        return step(**kwargs)

    optim_wrapper.step = recording_step
    model.train()
    log_vars = model.train_step(seg_batch(TRAIN_SHAPES, num_classes, seed=0), optim_wrapper)
    assert all(math.isfinite(float(v.detach())) for v in log_vars.values()), log_vars
    # DDP (find_unused_parameters=False, mmengine's default) fails on any such parameter
    assert not without_grad, f'trainable parameters without a gradient: {without_grad}'
    assert not zero_grad, f'backbone parameters with an all-zero gradient: {zero_grad}'
    # Mask2Former clips the gradient norm to 0.01 and trains the backbone at lr 1e-5: tiny
    # updates of weights near 1.0 can vanish in float32, so most (not all) must change.
    changed = [n for n, p in model.backbone.named_parameters()
               if p.requires_grad and not torch.equal(p.detach(), before[n])]
    assert len(changed) > 0.8 * len(before), f'{len(changed)} of {len(before)} changed'

    # ---- prediction: whole image, then sliding windows (mmseg's slide mode) --------------------
    model.eval()
    shape = (3, 100, 140)  # not a multiple of 32: Hiera pads for itself
    modes = [dict(mode='whole'), dict(mode='slide', crop_size=(64, 64), stride=(48, 48))]
    if cfg.model.decode_head.type == 'Mask2FormerHead':
        # mmseg's Mask2Former head resizes its masks to the whole padded image (pad_shape), so
        # slide mode fails with any backbone (Swin's too): whole mode only, as mmseg's configs
        modes = modes[:1]
    for mode in modes:
        model.test_cfg = type(cfg.model.test_cfg)(mode)
        with torch.no_grad():
            out = model.val_step(seg_batch([shape], num_classes, seed=1))
        assert len(out) == 1 and isinstance(out[0], SegDataSample)
        pred = out[0].pred_sem_seg.data
        assert tuple(pred.shape) == (1, 100, 140), (mode, pred.shape)
        assert 0 <= int(pred.min()) and int(pred.max()) < num_classes
        assert tuple(out[0].seg_logits.data.shape) == (num_classes, 100, 140)


def test_sync_bn_becomes_bn_without_cuda_in_distributed_runs():
    """mmseg's heads use SyncBN; on CPU the distributed set-up turns it into BN (config only)."""
    from mmengine.config import Config

    from hiera_mm.openmmlab.cpu_launch import SYNC_BN_TYPES, sync_bn_to_bn
    cfg = Config.fromfile(
        osp.join(SEG_DIR, 'upernet', 'upernet_hiera-t_8xb2-160k_ade20k-512x512.py'))
    cfg.sync_bn = 'torch'
    before = [d['type'] for d in iter_dicts(cfg.model.to_dict())
              if isinstance(d.get('type'), str) and d['type'] in SYNC_BN_TYPES]
    assert before == ['SyncBN', 'SyncBN'], before  # decode head, auxiliary head
    changed = sync_bn_to_bn(cfg)
    assert changed == ['model.decode_head.norm_cfg', 'model.auxiliary_head.norm_cfg', 'sync_bn']
    assert cfg.model.decode_head.norm_cfg.type == 'BN' and cfg.sync_bn is None
    assert not [d for d in iter_dicts(cfg.model.to_dict()) if d.get('type') in SYNC_BN_TYPES]


def test_our_train_entry_and_runner_from_cfg_register_the_same_hooks(tmp_path, monkeypatch):
    import train  # tools/train.py (tools/ is on sys.path, conftest)
    from mmengine.config import Config
    from mmengine.hooks import CheckpointHook
    from mmengine.runner import Runner

    monkeypatch.setenv('LOCAL_RANK', '0')
    work = str(tmp_path / 'work')
    opts = ['--cfg-options', 'model.backbone.init_cfg=None']
    ours = train.config_from_args(train.parse_args([TOY_CONFIG, '--work-dir', work] + opts))
    stock = Config.fromfile(TOY_CONFIG)
    stock.merge_from_dict({'model.backbone.init_cfg': None})
    stock.work_dir = work
    summaries = []
    for cfg in (ours, stock):
        runner = Runner.from_cfg(cfg)
        ckpt = next(h for h in runner.hooks if isinstance(h, CheckpointHook))
        summaries.append(([(type(h).__name__, h.priority) for h in runner.hooks],
                          (ckpt.interval, ckpt.by_epoch, ckpt.max_keep_ckpts)))
    assert summaries[0] == summaries[1]
    names = [name for name, _ in summaries[1][0]]
    for hook in ('FiniteLossHook', 'TrustRunCheckpointsHook', 'AtomicCheckpointHook',
                 'SegVisualizationHook'):
        assert hook in names
    assert 'CheckpointHook' not in names


def test_our_test_entry_takes_mmseg_arguments(tmp_path, monkeypatch):
    """tools/test.py on a segmentation config: --tta wraps the model in the config's tta_model
    and uses its tta_pipeline, --out keeps the label maps, --show-dir saves the drawings (as
    mmseg's tools/test.py)."""
    import test as test_tool  # tools/test.py
    monkeypatch.setenv('LOCAL_RANK', '0')
    args = test_tool.parse_args([TOY_CONFIG, 'ckpt.pth', '--tta', '--out', str(tmp_path / 'out'),
                                 '--show-dir', 'vis', '--work-dir', str(tmp_path)])
    cfg = test_tool.config_from_args(args)
    assert cfg.model.type == 'SegTTAModel' and cfg.model.module.type == 'EncoderDecoder'
    assert cfg.model.module.backbone.type == 'HieraBackbone'
    assert cfg.test_dataloader.dataset.pipeline == cfg.tta_pipeline
    assert cfg.tta_pipeline[1].type == 'TestTimeAug'  # inherited from mmseg's ADE20K base
    assert cfg.test_evaluator.output_dir == str(tmp_path / 'out')
    assert cfg.test_evaluator.keep_results is True
    assert cfg.default_hooks.visualization.draw is True and cfg.visualizer.save_dir == 'vis'
    assert cfg.load_from == 'ckpt.pth'


# ---------------------------------------------------------------------------------------------
# subprocesses: what each kind of run imports
# ---------------------------------------------------------------------------------------------
# A hook written into the test's tmp dir (imported through custom_imports): after the run, each
# rank writes which framework modules its process holds and which norm layers its model has.
PROBE = r'''
import json
import os
import sys

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS  # the root registry: found from the mmdet and mmseg scopes


@HOOKS.register_module()
class ModuleProbeHook(Hook):
    def after_run(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        report = dict(
            modules=sorted(m for m in sys.modules
                           if m in ('mmdet', 'mmseg', 'hiera_mm.mmdet', 'hiera_mm.mmseg')),
            world_size=get_world_size(), iter=runner.iter,
            sync_bn=sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules()),
            bn=sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()))
        with open(os.path.join(runner.work_dir, f'probe_rank{get_rank()}.json'), 'w') as f:
            json.dump(report, f)
'''


def tiny_seg_config(folder, data_root, *, batch_size, max_iters, probe=True):
    """The toy config with a one-block-per-stage Hiera-T, 64 px crops and no validation."""
    with open(osp.join(folder, 'seg_probe.py'), 'w') as f:
        f.write(PROBE)
    imports = ['mmseg', 'hiera_mm.mmseg'] + (['seg_probe'] if probe else [])
    hooks = [dict(type='FiniteLossHook'), dict(type='TrustRunCheckpointsHook')] + (
        [dict(type='ModuleProbeHook')] if probe else [])
    text = textwrap.dedent(f'''
        _base_ = {TOY_CONFIG!r}
        custom_imports = dict(imports={imports!r}, allow_failed_imports=False)
        custom_hooks = {hooks!r}
        crop_size = (64, 64)
        model = dict(
            data_preprocessor=dict(size=crop_size),
            backbone=dict(arch=dict(_delete_=True, embed_dim=96, depths=(1, 1, 1, 1),
                                    num_heads=(1, 2, 4, 8)), init_cfg=None),
            decode_head=dict(channels=32), auxiliary_head=dict(channels=16))
        train_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', reduce_zero_label=False),
            dict(type='RandomCrop', crop_size=crop_size),
            dict(type='PackSegInputs'),
        ]
        train_dataloader = dict(
            batch_size={batch_size}, num_workers=0, persistent_workers=False,
            dataset=dict(data_root={data_root!r}, pipeline=train_pipeline))
        val_dataloader = None
        val_evaluator = None
        val_cfg = None
        test_dataloader = None
        test_evaluator = None
        test_cfg = None
        param_scheduler = []
        train_cfg = dict(max_iters={max_iters}, val_interval=100000)
        default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval={max_iters}))
        log_processor = dict(window_size=1)
        randomness = dict(seed=0)
    ''')
    path = osp.join(folder, 'tiny_seg.py')
    with open(path, 'w') as f:
        f.write(text)
    return path


def run(args, cwd, env=None, timeout=600):
    env = dict(os.environ, **(env or {}))
    env['PYTHONPATH'] = os.pathsep.join(
        [str(cwd), ROOT] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    env.setdefault('OMP_NUM_THREADS', '1')
    res = run_tool(args, cwd=cwd, env=env, stderr=subprocess.STDOUT, timeout=timeout)
    assert res.returncode == 0, res.stdout[-5000:]
    return res.stdout


@pytest.fixture(scope='module')
def toy_seg(tmp_path_factory):
    from make_toy_seg import make_toy_seg
    return make_toy_seg(str(tmp_path_factory.mktemp('toy_seg')), num_train=4, num_val=2, size=64)


@pytest.mark.slow
def test_mmseg_run_from_plain_mmengine_imports_no_mmdet_integration(tmp_path, toy_seg):
    """Config.fromfile + Runner.from_cfg in a process that has imported nothing of mmseg (the
    config's custom_imports bring it in): two training steps, and no hiera_mm.mmdet."""
    cfg = tiny_seg_config(str(tmp_path), toy_seg['root'] + '/', batch_size=2, max_iters=2)
    code = textwrap.dedent(f'''
        import sys
        from mmengine.config import Config
        from mmengine.runner import Runner
        cfg = Config.fromfile({cfg!r})
        cfg.work_dir = {str(tmp_path / 'work')!r}
        Runner.from_cfg(cfg).train()
        print('LOADED', sorted(m for m in sys.modules if m.startswith('hiera_mm.')))
    ''')
    log = run([sys.executable, '-c', code], tmp_path)
    probe = json.loads((tmp_path / 'work' / 'probe_rank0.json').read_text())
    assert probe['iter'] == 2
    assert 'hiera_mm.mmseg' in probe['modules'] and 'mmseg' in probe['modules']
    assert 'hiera_mm.mmdet' not in probe['modules'], probe
    loaded = log.split('LOADED', 1)[1]
    assert 'hiera_mm.mmseg' in loaded and 'hiera_mm.mmdet' not in loaded
    for hook in ('FiniteLossHook', 'TrustRunCheckpointsHook', 'AtomicCheckpointHook'):
        assert hook in log


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_cpu_training_with_syncbn_config(tmp_path, toy_seg):
    """tools/dist_train.sh CONFIG 2 on the CPU: the heads' SyncBN becomes BN, both ranks train,
    neither imports hiera_mm.mmdet."""
    cfg = tiny_seg_config(str(tmp_path), toy_seg['root'] + '/', batch_size=2, max_iters=2)
    work = tmp_path / 'work'
    log = run(['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), cfg, '2', '--work-dir',
               str(work)], tmp_path, env=dict(PORT=str(free_port()), PYTHON=sys.executable))
    assert 'SyncBN -> BN' in log
    for rank in (0, 1):
        probe = json.loads((work / f'probe_rank{rank}.json').read_text())
        assert probe['world_size'] == 2 and probe['iter'] == 2, probe
        assert probe['sync_bn'] == 0 and probe['bn'] >= 2, probe
        assert 'hiera_mm.mmseg' in probe['modules'] and 'hiera_mm.mmdet' not in probe['modules']
    assert (work / 'iter_2.pth').is_file()
    assert [int(i) for i in re.findall(r'Iter\(train\) \[\s*(\d+)/2\]', log)][-1] == 2


@pytest.mark.slow
def test_mmdet_run_through_our_tools_imports_nothing_of_mmseg(tmp_path):
    from make_toy_coco import make_toy_coco
    data = make_toy_coco(str(tmp_path / 'toy'), num_train=2, num_val=1, size=64)
    cfg = write_tiny_retinanet_config(tmp_path, data['root'], 'det_probe', PROBE, max_iters=1,
                                      checkpoint_interval=1,
                                      hooks=[dict(type='ModuleProbeHook')])
    work = tmp_path / 'work'
    log = run([sys.executable, osp.join(ROOT, 'tools', 'train.py'), cfg, '--work-dir',
               str(work)], tmp_path)
    probe = json.loads((work / 'probe_rank0.json').read_text())
    assert probe['iter'] == 1
    assert probe['modules'] == ['hiera_mm.mmdet', 'mmdet'], probe  # neither mmseg nor ours
    assert 'AtomicCheckpointHook' in log
