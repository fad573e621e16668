"""tools/swap_backbone.py / hiera_mm_tools.swap.mmseg: swapped mmseg configs load, build, train.

Segmentor configs shipped inside the mmseg package (UperNet on Swin / ConvNeXt / ResNet,
Semantic FPN, SegFormer, SegNeXt, Mask2Former on Swin and ResNet, FCN on HRNet) are swapped to
Hiera-T; the
written config must load with ``Config.fromfile``, say what changed for each head (in_channels,
in_index), state Hiera's normalisation, AdamW and paramwise settings and import
``hiera_mm.mmseg`` (never ``hiera_mm.mmdet``), build, and give a finite loss on two 64 x 64
images in which every backbone parameter gets a gradient. To stay fast on CPU the built model
has one block per Hiera stage, no pretrained weights, thinner heads and fewer queries /
transformer layers / sampled points; SyncBN (left in the config) becomes BN after the build, as
tools/train.py does without a process group. Dilated-ResNet and plain-ViT decoders are refused.
Which stages the heads read comes from probing the original backbone: HRNet's four branches
(strides 4..32) feeding FCN and OCR heads are swapped, not refused.
"""
import importlib.util
import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import IMAGENET_MEAN, IMAGENET_STD, ROOT, iter_dicts

# Hiera-T's stage widths: embed_dim 96 doubled at each of its 4 stages (Ryali et al. 2023,
# Table 2; "embed_dim": 96, "embed_dim_multiplier": 2.0 in facebook/hiera-tiny-224-hf's config.json)
TINY = [96, 192, 384, 768]
IMAGE_HW = (64, 64)  # two 32-pixel mask units a side
ALL = (0, 1, 2, 3)

# (config inside mmseg's package, the stages Hiera must emit, {part: what the written config
#  states for it (None: nothing, it is inherited)}, {part: its in_channels in the end})
CASES = [
    ('swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py', ALL,
     {'decode_head': None, 'auxiliary_head': None},  # Swin-T's widths are Hiera-T's
     {'decode_head': TINY, 'auxiliary_head': 384}),
    ('convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py', ALL,
     {'decode_head': None, 'auxiliary_head': None},
     {'decode_head': TINY, 'auxiliary_head': 384}),
    ('upernet/upernet_r50_4xb4-80k_ade20k-512x512.py', ALL,  # the aux FCN head reads stage 2
     {'decode_head': dict(in_channels=TINY), 'auxiliary_head': dict(in_channels=384)},
     {'decode_head': TINY, 'auxiliary_head': 384}),
    ('sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py', ALL,  # the head reads the neck's maps
     {'neck': dict(in_channels=TINY), 'decode_head': None},
     {'neck': TINY, 'decode_head': [256] * 4}),
    ('segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py', ALL,
     {'decode_head': dict(in_channels=TINY)}, {'decode_head': TINY}),
    ('segnext/segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512.py', (1, 2, 3),  # in_index [1, 2, 3]
     {'decode_head': dict(in_channels=TINY[1:], in_index=[0, 1, 2])},
     {'decode_head': TINY[1:]}),
    ('mask2former/mask2former_swin-t_8xb2-160k_ade20k-512x512.py', ALL,
     {'decode_head': None}, {'decode_head': TINY}),
    ('mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py', ALL,
     {'decode_head': dict(in_channels=TINY)}, {'decode_head': TINY}),
    # HRNetV2-W18 (no table of backbones names it): its four branches of 18, 36, 72, 144
    # channels at strides 4..32 are concatenated by the FCN head (resize_concat)
    ('hrnet/fcn_hr18_4xb4-80k_ade20k-512x512.py', ALL,
     {'decode_head': dict(in_channels=TINY)}, {'decode_head': TINY}),
]


@pytest.fixture(autouse=True)
def mmseg_scope():
    """Build from mmseg's registries (other test files switch the default scope to mmdet) and
    keep init_weights / the optimizer constructor from logging every parameter."""
    import logging
    from mmengine.logging import MMLogger
    import mmseg.models  # noqa: F401  (registers mmseg's models)
    from mmengine.registry import DefaultScope

    import hiera_mm.mmseg  # noqa: F401  (registers into mmseg)

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield
    logger.setLevel(level)


def swap(config, arch='tiny', **kwargs):
    from hiera_mm_tools.swap.mmseg import swap_backbone
    return swap_backbone(config, arch, **kwargs)


def load(text, tmp_path, name='swapped.py'):
    from mmengine.config import Config
    path = tmp_path / name
    path.write_text(text)
    return Config.fromfile(str(path))


def shrink(cfg):
    """Cheap on CPU, same structure: one block per Hiera stage, no pretrained weights, 64-pixel
    crops, thinner heads, fewer queries / transformer layers / sampled points."""
    from hiera_mm.archs import ARCH_SETTINGS

    model = cfg.model
    model.backbone.arch = dict(ARCH_SETTINGS[model.backbone.arch], depths=(1, 1, 1, 1))
    model.backbone.init_cfg = None
    model.data_preprocessor.size = IMAGE_HW
    for d in iter_dicts(model):
        if d.get('type') in ('UPerHead', 'FCNHead', 'FPNHead', 'SegformerHead', 'LightHamHead'):
            d['channels'] = min(d['channels'], 64)
            if 'ham_channels' in d:
                d['ham_channels'] = 64
        if 'num_queries' in d:
            d['num_queries'] = min(d['num_queries'], 20)
        if isinstance(d.get('encoder'), dict) and 'num_layers' in d['encoder']:
            d['encoder']['num_layers'] = 1
        if isinstance(d.get('transformer_decoder'), dict):
            d['transformer_decoder']['num_layers'] = 2  # Mask2Former: one per level and more
        if 'num_points' in d and isinstance(d['num_points'], int) and d['num_points'] > 100:
            d['num_points'] = 256


def seg_batch(num_classes):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 256, (3, *IMAGE_HW), generator=gen).to(torch.uint8))
        label = torch.randint(0, min(num_classes, 5), (1, *IMAGE_HW), generator=gen)
        label[:, :8] = 255  # ignored pixels, as padded ones
        sample = SegDataSample(metainfo=dict(img_shape=IMAGE_HW, ori_shape=IMAGE_HW))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def check_common(cfg, stages):
    """What every swapped segmentation config states."""
    assert cfg.custom_imports.imports[-1] == 'hiera_mm.mmseg'
    assert 'hiera_mm.mmdet' not in cfg.custom_imports.imports
    assert cfg.custom_imports.allow_failed_imports is False
    assert [h['type'] for h in cfg.custom_hooks][-2:] == ['FiniteLossHook',
                                                          'TrustRunCheckpointsHook']
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert 'interval' in cfg.default_hooks.checkpoint  # its options inherited
    backbone = cfg.model.backbone
    assert backbone.type == 'HieraBackbone' and backbone.arch == 'tiny'
    assert 'depths' not in backbone and 'embed_dims' not in backbone  # _delete_ dropped them
    assert tuple(backbone.out_indices) == stages
    assert backbone.init_cfg == dict(type='Pretrained',
                                     checkpoint='hf://facebook/hiera-tiny-224-hf')
    assert cfg.model.get('pretrained') is None
    pre = cfg.model.data_preprocessor
    assert pre.type == 'SegDataPreProcessor' and pre.bgr_to_rgb is True
    assert list(pre.mean) == IMAGENET_MEAN and list(pre.std) == IMAGENET_STD
    assert pre.test_cfg.size_divisor % 32 == 0
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW'
    paramwise = cfg.optim_wrapper.paramwise_cfg
    assert paramwise.norm_decay_mult == 0
    assert paramwise.custom_keys['pos_embed']['decay_mult'] == 0
    assert 'bias_lr_mult' not in paramwise


@pytest.mark.parametrize('config,stages,stated,in_channels', CASES, ids=[c[0] for c in CASES])
def test_swapped_config_trains(config, stages, stated, in_channels, tmp_path):
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS

    text = swap(f'mmseg::{config}')
    assert text.splitlines()[:2] == ['# Generated by tools/swap_backbone.py from',
                                     f'#   mmseg::{config}']
    assert f"_base_ = 'mmseg::{config}'" in text
    cfg = load(text, tmp_path)
    check_common(cfg, stages)

    # ---- the heads / neck: what is stated, what is inherited ---------------------------------
    statements = {}
    exec(text, statements)  # a config file is Python: what it states itself, nothing inherited
    written = statements['model']
    for part, update in stated.items():
        assert written.get(part) == update, part
    for part, channels in in_channels.items():
        assert cfg.model[part].in_channels == channels, part

    # ---- build, optimizer groups ---------------------------------------------------------------
    shrink(cfg)
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    if 'Mask2Former' in cfg.model.decode_head.type:
        model.init_weights()  # transformer heads: PyTorch's default init can give NaN costs
    ow_cfg = cfg.optim_wrapper.copy()
    if ow_cfg.get('type') == 'AmpOptimWrapper':  # needs a GPU; the groups are the same
        ow_cfg.type = 'OptimWrapper'
        for key in ('loss_scale', 'dtype'):
            ow_cfg.pop(key, None)
    optim_wrapper = build_optim_wrapper(model, ow_cfg)
    group_of = {id(p): g for g in optim_wrapper.optimizer.param_groups for p in g['params']}
    optimizer = cfg.optim_wrapper.optimizer
    backbone_lr_mult = cfg.optim_wrapper.paramwise_cfg.custom_keys.get(
        'backbone', {}).get('lr_mult', 1.0)
    for module_name, module in model.backbone.named_modules():
        for name, param in module.named_parameters(recurse=False):
            full = f'backbone.{module_name}.{name}'
            group = group_of[id(param)]
            assert group['lr'] == pytest.approx(optimizer.lr * backbone_lr_mult), full
            if isinstance(module, torch.nn.LayerNorm) or 'pos_embed' in name:
                assert group['weight_decay'] == 0, f'{full} is decayed'
            elif param.ndim > 1:
                assert group['weight_decay'] == pytest.approx(optimizer.weight_decay), full

    # ---- one loss step --------------------------------------------------------------------------
    model.train()
    data = model.data_preprocessor(seg_batch(cfg.model.decode_head.num_classes), True)
    assert data['inputs'].shape == (2, 3, *IMAGE_HW)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert math.isfinite(loss.item()), log_vars
    if cfg.model.get('auxiliary_head'):
        assert any(k.startswith('aux') for k in log_vars), sorted(log_vars)
    # Hiera emits only the stages read: every backbone parameter gets a gradient (DDP rejects
    # any without); autograd.grad skips the heads' weight gradients (faster)
    names, params = zip(*model.backbone.named_parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    without_grad = [n for n, g in zip(names, grads) if g is None]
    assert not without_grad, f'backbone parameters without a gradient: {without_grad}'


# ---- more families, checked on the written config only -------------------------------------
MAPPED = [
    # Twins: FPN neck over PCPVT
    ('twins/twins_pcpvt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512.py', ALL, 'neck', TINY),
    # MaskFormer: its head reads all outputs
    ('maskformer/maskformer_r50-d32_8xb2-160k_ade20k-512x512.py', ALL, 'decode_head', TINY),
    # PointRend: CascadeEncoderDecoder, FPN neck
    ('point_rend/pointrend_r50_4xb4-160k_ade20k-512x512.py', ALL, 'neck', TINY),
]


@pytest.mark.parametrize('config,stages,part,in_channels', MAPPED, ids=[c[0] for c in MAPPED])
def test_swap_maps_stages(config, stages, part, in_channels, tmp_path):
    cfg = load(swap(f'mmseg::{config}'), tmp_path)
    assert tuple(cfg.model.backbone.out_indices) == stages
    assert list(cfg.model[part].in_channels) == in_channels
    assert cfg.model.get('pretrained') is None


def test_aux_head_width_and_base_plus(tmp_path):
    # Hiera-B+ (112 wide): UperNet-Swin's heads are restated, the FCN aux head reads stage 2
    cfg = load(swap('mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-'
                    '512x512.py', 'base_plus', lr=3e-5), tmp_path)
    assert list(cfg.model.decode_head.in_channels) == [112, 224, 448, 896]
    assert cfg.model.auxiliary_head.in_channels == 448 and cfg.model.auxiliary_head.in_index == 2
    assert cfg.model.backbone.drop_path_rate == 0.2
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(3e-5)
    assert cfg.optim_wrapper.optimizer.weight_decay == pytest.approx(0.01)  # Swin's AdamW


def test_old_backbone_settings_are_reset(tmp_path):
    # ConvNeXt: its mmpretrain import and layer-wise decay constructor go, AMP stays;
    # Mask2Former: mmdet.models (its head) stays, the backbone lr x 0.1 is kept for Hiera
    cfg = load(swap('mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py'),
               tmp_path)
    assert cfg.custom_imports.imports == ['mmseg', 'hiera_mm.mmseg']
    ow = cfg.optim_wrapper
    assert ow.type == 'AmpOptimWrapper' and ow.constructor == 'DefaultOptimWrapperConstructor'
    assert 'decay_rate' not in ow.paramwise_cfg and 'num_layers' not in ow.paramwise_cfg
    assert cfg.model.test_cfg.mode == 'slide'  # inherited
    if importlib.util.find_spec('mmpretrain') is None:  # ConvNeXt cannot be built to probe it
        from hiera_mm_tools.swap.mmseg import plan_swap
        plan = plan_swap('mmseg::convnext/convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py',
                         'tiny')
        assert plan.remarks == [
            'mmpretrain is not installed, so mmpretrain.ConvNeXt was not probed: its out_indices '
            '(0, 1, 2, 3) were taken as its stages at strides 4..32 (install mmpretrain to probe '
            'them).']
    cfg = load(swap('mmseg::mask2former/mask2former_swin-t_8xb2-160k_ade20k-512x512.py'),
               tmp_path)
    assert cfg.custom_imports.imports == ['mmdet.models', 'mmseg', 'hiera_mm.mmseg']
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert keys['backbone'] == dict(lr_mult=0.1, decay_mult=1.0)
    assert keys['backbone.trunk.pos_embed'] == dict(lr_mult=0.1, decay_mult=0.0)
    assert cfg.model.data_preprocessor.test_cfg.size_divisor == 32  # the base's, kept


def test_hrnet_feeds_fcn_and_ocr_heads(tmp_path):
    # OCRNet: a CascadeEncoderDecoder whose two heads both read HRNet's four branches
    text = swap('mmseg::ocrnet/ocrnet_hr18_4xb4-80k_ade20k-512x512.py')
    assert ('backbone: HRNet (out_indices (0, 1, 2, 3)) -> HieraBackbone arch \'tiny\', '
            'out_indices (0, 1, 2, 3)') in text.replace('\n#     ', ' ')
    cfg = load(text, tmp_path)
    check_common(cfg, ALL)
    heads = cfg.model.decode_head
    assert [h.type for h in heads] == ['FCNHead', 'OCRHead']
    assert all(list(h.in_channels) == TINY and tuple(h.in_index) == ALL for h in heads)
    assert cfg.model.pretrained is None  # was open-mmlab://msra/hrnetv2_w18


def test_poolformer_is_probed_or_refused_with_the_fix(tmp_path):
    # PoolFormer's out_indices (0, 2, 4, 6) index its layer list: the maps at strides 4..32
    # (Yu et al. 2022) are found by running it, which needs mmpretrain
    config = 'mmseg::poolformer/fpn_poolformer_s12_8xb4-40k_ade20k-512x512.py'
    if importlib.util.find_spec('mmpretrain') is None:
        with pytest.raises(ValueError, match=r'mmpretrain.PoolFormer .*comes from mmpretrain, '
                                             r'which is not installed.*\(0, 2, 4, 6\).*'
                                             r'Install mmpretrain'):
            swap(config)
    else:
        cfg = load(swap(config), tmp_path)
        assert tuple(cfg.model.backbone.out_indices) == ALL
        assert list(cfg.model.neck.in_channels) == TINY


# ---- refusals -----------------------------------------------------------------------------------
@pytest.mark.parametrize('config,match', [
    ('pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py',
     r'ResNetV1c .* is a dilated ResNet \(strides \(1, 2, 1, 1\), dilations \(1, 1, 2, 4\): '
     r'its last stage is at stride 8.*PSPHead reads in_index 3.*Suggestion: .*'
     r'mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py'),
    ('deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_ade20k-512x512.py',
     r'is a dilated ResNet.*DepthwiseSeparableASPPHead.*Suggestion'),
    ('setr/setr_vit-l_mla_8xb1-80k_cityscapes-768x768.py',
     r'VisionTransformer .* is a plain ViT: its out_indices \(5, 11, 17, 23\).*neck MLANeck'
     r'.*Suggestion: .*upernet'),
    ('dpt/dpt_vit-b16_8xb2-160k_ade20k-512x512.py', r'plain ViT.*DPTHead'),
    ('knet/knet-s3_swin-t_upernet_8xb2-adamw-80k_ade20k-512x512.py',
     r'IterativeDecodeHead .*cannot be adapted.*kernel_generate_head'),
])
def test_refuses_what_it_cannot_map(config, match):
    with pytest.raises(ValueError, match=match):
        swap(f'mmseg::{config}')


# ---- command line: the framework comes from the config; nothing of mmdet is imported -----------
def test_cli_picks_mmseg_without_importing_mmdet(tmp_path):
    local = tmp_path / 'local.py'  # no mmseg:: prefix: default_scope 'mmseg' decides
    local.write_text("_base_ = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'\n"
                     'model = dict(decode_head=dict(num_classes=7))\n')
    # mmdet made unimportable in the child: the mmseg planner (probing included; mmseg's own
    # Mask2Former head falls back without mmdet) must work on a machine without mmdet
    script = (
        'import sys\n'
        'class NoMMDet:\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        "        if name.split('.')[0] == 'mmdet':\n"
        '            raise ModuleNotFoundError(name, name=name)\n'
        'sys.meta_path.insert(0, NoMMDet())\n'
        'import swap_backbone as cli\n'
        f"assert cli.main([{str(local)!r}, '--arch', 'tiny', '--out', 'out/new.py']) == 0\n"
        "assert cli.main(['mmseg::pspnet/pspnet_r50-d8_4xb4-80k_ade20k-512x512.py', '--arch',\n"
        "                 'tiny', '--out', 'out/psp.py']) == 2\n"
        "print('MMDET', sorted(m for m in sys.modules if m.split('.')[0] == 'mmdet'\n"
        "                      or m.startswith('hiera_mm.mmdet')))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, 'tools'), ROOT]))
    res = subprocess.run([sys.executable, '-c', script], cwd=tmp_path, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert 'MMDET []' in res.stdout, res.stdout[-2000:]
    assert 'Wrote out/new.py' in res.stdout and 'refused: backbone ResNetV1c' in res.stderr
    cfg = load((tmp_path / 'out' / 'new.py').read_text(), tmp_path / 'out', 'again.py')
    assert cfg.model.decode_head.num_classes == 7  # the local config's own change is inherited
    assert list(cfg.model.neck.in_channels) == TINY
    assert cfg.custom_imports.imports == ['mmseg', 'hiera_mm.mmseg']
    assert not (tmp_path / 'out' / 'psp.py').exists()
