"""Mixed precision on the CPU: what can be checked without a GPU.

* The trunk's dtype policy (``hiera_mm/models/hiera.py``): under ``torch.autocast`` the residual
  stream stays fp32, so the stage maps are fp32 and the same in training and in inference.
* Feature bounds against fp32 for every arch family (Hiera, SAM2's Hiera, timm's abswin).
* Forward and backward of each framework's Hiera-T model (mmdet Mask R-CNN, mmseg UperNet,
  Detectron2 Mask R-CNN) under CPU autocast, bf16 and (where this torch has it) fp16: finite loss
  and gradients, loss within a stated bound of fp32.
* The AMP switches build what they should: ``tools/train.py --amp [--amp-dtype]`` and the AMP
  config give mmengine's ``AmpOptimWrapper`` (dynamic loss scale, the chosen dtype), refused with
  the fix on a machine without a GPU; ``train_net.py`` picks Detectron2's ``AMPTrainer`` in
  ``train.amp.precision``, and fp32 ``SimpleTrainer`` with a warning on the CPU.

The bounds are relative: max |autocast - fp32| over max |fp32| of each stage map, and
|loss_autocast - loss_fp32| / |loss_fp32|. Measured here (2026-12-03, torch 2.14 CPU, random
weights): stage maps about 1e-2 in bf16 and 1.5e-3 in fp16 (bf16 keeps 8 significant bits, fp16
11); the bounds below leave a factor of about 3 for other seeds and CPUs.
"""
import contextlib
import logging
import math
import os
import random

import numpy as np
import pytest
import torch

from conftest import HAVE_DETECTRON2, ROOT, needs_detectron2, randomize_

FEATURE_BOUND = {torch.bfloat16: 3e-2, torch.float16: 5e-3}
# The detectors' and the segmentor's total loss (random init, one small image): measured up to
# 6e-3 (bf16) and 7e-4 (fp16) relative to fp32; the same bounds as the features.
LOSS_BOUND = {torch.bfloat16: 3e-2, torch.float16: 5e-3}


def cpu_fp16_autocast() -> bool:
    """Whether this torch autocasts to fp16 on the CPU (torch >= 2.4 does)."""
    try:
        with torch.autocast('cpu', dtype=torch.float16):
            out = torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2))
    except (RuntimeError, AssertionError):
        return False
    return out.dtype == torch.float16


# The autocast dtypes the framework tests run (one fp32 reference for all).
AMP_DTYPES = [torch.bfloat16] + ([torch.float16] if cpu_fp16_autocast() else [])
AUTOCAST_DTYPES = [
    pytest.param(torch.bfloat16, id='bf16'),
    pytest.param(torch.float16, id='fp16', marks=pytest.mark.skipif(
        not cpu_fp16_autocast(), reason='this torch has no fp16 autocast on the CPU')),
]


def rel_err(a, b):
    return float((a.detach().float() - b.detach().float()).abs().max()
                 / b.detach().float().abs().max())


# ---------------------------------------------------------------------------------------------
# The trunk: dtype policy and feature bounds for every arch family
FAMILIES = {
    # small custom widths and depths of each family's layout
    'hiera': dict(embed_dim=32, depths=(1, 2, 2, 1), num_heads=(1, 2, 4, 8)),
    'hiera-windowed': dict(embed_dim=32, depths=(1, 2, 2, 1), num_heads=(1, 2, 4, 8),
                           attention='windowed'),
    'sam2': dict(embed_dim=32, depths=(1, 2, 3, 1), num_heads=(1, 2, 4, 8),
                 window_sizes=(8, 4, 14, 7), global_blocks=(4,), pos_embed='abs_win',
                 pos_embed_size=(7, 7)),
    'abswin': dict(embed_dim=32, depths=(1, 2, 2, 1), num_heads=(1, 2, 4, 8), pos_embed='abs_win',
                   pos_embed_antialias=True, layer_scale=1e-5, pretrain_size=256,
                   pos_embed_size=(16, 16), expand_proj=False),
}


def family_model(name):
    from hiera_mm.models.stages import HieraStages
    arch = dict(FAMILIES[name])
    attention = arch.pop('attention', 'exact')
    global_blocks = arch.pop('global_blocks', None)
    model = HieraStages(arch, attention=attention, global_blocks=global_blocks)
    return randomize_(model, seed=1)


@pytest.mark.parametrize('dtype', AUTOCAST_DTYPES)
@pytest.mark.parametrize('family', list(FAMILIES))
def test_trunk_feature_bounds_and_dtype_policy(family, dtype):
    model = family_model(family)
    x = torch.randn(1, 3, 128, 192, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model.eval()(x)
    with torch.no_grad(), torch.autocast('cpu', dtype=dtype):
        inference = model(x)
    model.train()
    with torch.autocast('cpu', dtype=dtype):
        training = model(x)
    sum(o.float().square().mean() for o in training).backward()
    for stage, (r, i, t) in enumerate(zip(ref, inference, training)):
        # the policy: fp32 stage maps, the same numbers with and without autograd
        assert i.dtype == t.dtype == torch.float32, (stage, i.dtype, t.dtype)
        assert torch.equal(i, t.detach()), f'stage {stage + 1}: inference != training'
        err = rel_err(i, r)
        assert err <= FEATURE_BOUND[dtype], f'stage {stage + 1}: {err:.2e} > {FEATURE_BOUND[dtype]}'
        assert err > 0, 'autocast had no effect'  # the check is not vacuous
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_fp32_without_autocast_is_untouched():
    """No autocast: every op and the output dtype stay fp32 (the policy adds no casts there)."""
    model = family_model('abswin').eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        outs = model(x)
    assert all(o.dtype == torch.float32 for o in outs)


# ---------------------------------------------------------------------------------------------
# Each framework's Hiera-T model: forward + backward under CPU autocast
def seed_all(seed=0):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def autocast(dtype):
    """CPU autocast to ``dtype``; None: fp32 (no autocast)."""
    return torch.autocast('cpu', dtype=dtype) if dtype is not None else contextlib.nullcontext()


def loss_and_grads(model, compute_loss, dtype):
    """(total loss, gradients) of one forward, ``compute_loss(dtype)``, and backward, with every
    random generator reset so the samplers draw the same."""
    model.zero_grad(set_to_none=True)
    seed_all()
    loss = compute_loss(dtype)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
             if p.grad is not None}
    return float(loss), grads


def check_against_fp32(model, compute_loss):
    """fp32, then each autocast dtype: finite loss and gradients (the trunk's included), the same
    parameters reached, the loss within ``LOSS_BOUND`` of fp32."""
    ref_loss, ref_grads = loss_and_grads(model, compute_loss, None)
    assert math.isfinite(ref_loss), ref_loss
    assert any('.trunk.' in n for n in ref_grads), 'no gradient reached the Hiera trunk'
    diffs = {}
    for dtype in AMP_DTYPES:
        loss, grads = loss_and_grads(model, compute_loss, dtype)
        assert math.isfinite(loss), (dtype, loss)
        bad = [n for n, g in grads.items() if not torch.isfinite(g).all()]
        assert not bad, f'{dtype}: non-finite gradients under autocast: {bad[:5]}'
        assert set(grads) == set(ref_grads), f'{dtype} changed which parameters get a gradient'
        diffs[dtype] = abs(loss - ref_loss) / abs(ref_loss)
        print(f'loss fp32 {ref_loss:.5f}, {dtype} {loss:.5f}: relative difference '
              f'{diffs[dtype]:.2e}')
    assert all(diffs[d] <= LOSS_BOUND[d] for d in diffs), diffs
    return diffs


def mmdet_inputs(num_classes):
    from mmdet.testing import demo_mm_inputs
    seed_all(0)
    return demo_mm_inputs(batch_size=1, image_shapes=[(3, 128, 160)], num_items=[3],
                          num_classes=num_classes, with_mask=True)


def test_mmdet_mask_rcnn_hiera_t_under_autocast():
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import hiera_mm.mmdet  # noqa: F401
    register_all_modules()
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'toy', 'mask-rcnn_hiera-t_fpn_toy.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.drop_path_rate = 0.0
    seed_all(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(mmdet_inputs(3), True)
    extract_feat = model.extract_feat

    def compute_loss(dtype):
        # Trunk and neck under autocast, the heads in fp32: mmdet's heads do not run under CPU
        # autocast. CPU autocast leaves the box decoding (its exp) in the low dtype where CUDA
        # autocast computes it in fp32, and mmcv's NMS takes fp32 boxes only; mmcv's RoIAlign has
        # no bf16 kernel at all (CPU or CUDA, mmcv 2.1).
        def autocast_extract_feat(batch_inputs):
            with autocast(dtype):
                feats = extract_feat(batch_inputs)
            assert dtype is None or feats[0].dtype == dtype  # the neck ran in the low dtype
            return tuple(f.float() for f in feats)

        model.extract_feat = autocast_extract_feat
        try:
            loss, _ = model.parse_losses(model(**data, mode='loss'))
        finally:
            model.extract_feat = extract_feat
        return loss

    check_against_fp32(model, compute_loss)


def test_mmseg_upernet_hiera_t_under_autocast():
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import hiera_mm.mmseg  # noqa: F401
    from test_mmseg import seg_batch
    register_all_modules()
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'mmseg', 'toy', 'upernet_hiera-t_toy.py'))
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.drop_path_rate = 0.0
    cfg.model.data_preprocessor.size = (128, 128)
    seed_all(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    num_classes = cfg.model.decode_head.num_classes
    # two images: the pyramid pooling's BatchNorm needs more than one value per channel
    data = model.data_preprocessor(seg_batch([(3, 128, 128)] * 2, num_classes, 0), True)

    def compute_loss(dtype):
        with autocast(dtype):
            loss, _ = model.parse_losses(model(**data, mode='loss'))
        return loss

    check_against_fp32(model, compute_loss)


def d2_batch():
    """An image with boxes and bitmasks of a few rectangles, as Detectron2's mapper gives."""
    from detectron2.structures import BitMasks, Boxes, Instances
    gen = torch.Generator().manual_seed(0)
    batch = []
    for h, w in ((128, 160),):
        image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
        boxes, masks = [], []
        for k in range(3):
            y0, x0 = (int(v) for v in torch.randint(0, h // 2, (2,), generator=gen))
            y1, x1 = y0 + 24 + 8 * k, x0 + 32
            image[:, y0:y1, x0:x1] = 60 * (k + 1)
            mask = torch.zeros(h, w, dtype=torch.bool)
            mask[y0:y1, x0:x1] = True
            boxes.append([x0, y0, x1, y1])
            masks.append(mask)
        inst = Instances((h, w), gt_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)),
                         gt_classes=torch.tensor([0, 1, 2]), gt_masks=BitMasks(torch.stack(masks)))
        batch.append(dict(image=image, instances=inst, height=h, width=w))
    return batch


@needs_detectron2
def test_detectron2_mask_rcnn_hiera_t_under_autocast():
    from detectron2.config import LazyConfig, instantiate
    from detectron2.utils.events import EventStorage
    cfg = LazyConfig.load(os.path.join(ROOT, 'configs', 'detectron2', 'toy',
                                       'mask_rcnn_hiera_t_toy.py'))
    seed_all(0)
    model = instantiate(cfg.model).train()
    batch = d2_batch()

    def compute_loss(dtype):
        with autocast(dtype):
            return sum(model(batch).values())

    with EventStorage(0):
        check_against_fp32(model, compute_loss)


# ---------------------------------------------------------------------------------------------
# The switches: tools/train.py --amp / --amp-dtype and the AMP config (mmengine), train_net.py's
# train.amp.* (Detectron2)
AMP_CONFIG = os.path.join(ROOT, 'configs', 'mask_rcnn',
                          'mask-rcnn_hiera-t_fpn_amp-ms-crop-3x_coco.py')
DET_CONFIG = os.path.join(ROOT, 'configs', 'mask_rcnn', 'mask-rcnn_hiera-t_fpn_1x_coco.py')
SEG_CONFIG = os.path.join(ROOT, 'configs', 'mmseg', 'upernet',
                          'upernet_hiera-t_8xb2-160k_ade20k-512x512.py')


def train_config(argv):
    import train
    args = train.parse_args(argv)
    return train.config_from_args(args)


@pytest.fixture
def gpu_visible_to_mmengine(monkeypatch):
    """Let ``AmpOptimWrapper`` be built on this CPU machine: its constructor asserts a CUDA (NPU,
    MLU, MUSA) device. Only the check is patched; nothing runs on a GPU."""
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available', lambda: True)


def build_wrapper(cfg):
    from mmengine.optim import build_optim_wrapper
    model = torch.nn.Linear(2, 2)
    ow_cfg = cfg.optim_wrapper.to_dict() if hasattr(cfg.optim_wrapper, 'to_dict') \
        else dict(cfg.optim_wrapper)
    ow_cfg.pop('constructor', None)  # the layer-decay constructor needs the Hiera model
    ow_cfg.pop('paramwise_cfg', None)
    return build_optim_wrapper(model, ow_cfg)


@pytest.mark.parametrize('config', [DET_CONFIG, SEG_CONFIG], ids=['mmdet', 'mmseg'])
@pytest.mark.parametrize('argv, dtype', [
    (['--amp'], None),  # as mmdet's --amp: fp16, mmengine's default autocast dtype on CUDA
    (['--amp', '--amp-dtype', 'float16'], torch.float16),
    (['--amp', '--amp-dtype', 'bfloat16'], torch.bfloat16),
    (['--amp-dtype', 'bfloat16'], torch.bfloat16),  # --amp-dtype alone implies --amp
], ids=['amp', 'fp16', 'bf16', 'bf16-alone'])
def test_train_py_amp_options(config, argv, dtype, tmp_path, gpu_visible_to_mmengine):
    from mmengine.optim import AmpOptimWrapper
    from torch.cuda.amp import GradScaler
    cfg = train_config([config, '--work-dir', str(tmp_path), *argv])
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.optim_wrapper.get('dtype') == (None if dtype is None else str(dtype).split('.')[1])
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'  # the rest of the wrapper is kept
    wrapper = build_wrapper(cfg)
    assert type(wrapper) is AmpOptimWrapper
    assert wrapper.cast_dtype == dtype
    assert isinstance(wrapper.loss_scaler, GradScaler)
    assert wrapper._scale_update_param is None  # dynamic: the scaler adapts its scale


def test_train_py_without_amp_keeps_optim_wrapper(tmp_path):
    cfg = train_config([DET_CONFIG, '--work-dir', str(tmp_path)])
    assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'
    assert 'dtype' not in cfg.optim_wrapper


def test_amp_config_and_bf16_override(tmp_path, gpu_visible_to_mmengine):
    from mmengine.optim import AmpOptimWrapper
    cfg = train_config([AMP_CONFIG, '--work-dir', str(tmp_path)])
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    wrapper = build_wrapper(cfg)
    assert type(wrapper) is AmpOptimWrapper and wrapper.cast_dtype is None  # fp16 on CUDA
    # --amp-dtype on a config that already trains with AMP sets its dtype
    cfg = train_config([AMP_CONFIG, '--work-dir', str(tmp_path), '--amp-dtype', 'bfloat16'])
    assert build_wrapper(cfg).cast_dtype == torch.bfloat16


def test_train_py_amp_dtype_choices(tmp_path, capsys):
    import train
    with pytest.raises(SystemExit):
        train.parse_args([DET_CONFIG, '--amp-dtype', 'float8'])
    assert "invalid choice: 'float8'" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal without a GPU')
@pytest.mark.parametrize('argv', [[DET_CONFIG, '--amp'], [AMP_CONFIG]], ids=['--amp', 'amp-config'])
def test_train_py_refuses_amp_without_gpu(argv, tmp_path):
    """mmengine's AmpOptimWrapper needs CUDA (or NPU / MLU / MUSA): refused before anything is
    built, with the fix named."""
    import train
    with pytest.raises(RuntimeError, match='needs a GPU') as err:
        train.main([*argv, '--work-dir', str(tmp_path)])
    assert 'optim_wrapper.type=OptimWrapper' in str(err.value)
    assert not list(tmp_path.iterdir()), 'nothing may be written before the refusal'


# Detectron2: tools/detectron2/train_net.py
@pytest.fixture(scope='module')
def train_net():
    if not HAVE_DETECTRON2:
        pytest.skip(needs_detectron2.kwargs['reason'])
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'hiera_mm_test_train_net', os.path.join(ROOT, 'tools', 'detectron2', 'train_net.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def d2_cfg(*overrides):
    from hiera_mm_tools import d2_runner
    return d2_runner.load_config(os.path.join(ROOT, 'configs', 'detectron2',
                                              'mask_rcnn_hiera_t_3x.py'), list(overrides))


def trainer_parts():
    model = torch.nn.Linear(2, 2).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, [dict()], optimizer


@pytest.mark.parametrize('overrides, precision', [
    ([], torch.float16),  # the ViTDet-style config: AMP on, Detectron2's default fp16
    (['train.amp.precision=float16'], torch.float16),
    (['train.amp.precision=bfloat16'], torch.bfloat16),
], ids=['default', 'fp16', 'bf16'])
def test_train_net_amp_trainer_and_precision(train_net, overrides, precision):
    from detectron2.engine import AMPTrainer
    cfg = d2_cfg('train.device=cuda', *overrides)
    assert cfg.train.amp.enabled is True
    assert cfg.train.ddp.fp16_compression is True  # ViTDet's fp16 gradient all-reduce, kept
    trainer = train_net.build_trainer(cfg, *trainer_parts())
    assert type(trainer) is AMPTrainer
    assert trainer.precision == precision


def test_train_net_cpu_trains_fp32_with_a_warning(train_net, caplog):
    from detectron2.engine import AMPTrainer, SimpleTrainer
    cfg = d2_cfg('train.device=cpu', 'train.amp.precision=bfloat16')
    with caplog.at_level(logging.WARNING, logger='detectron2'):
        trainer = train_net.build_trainer(cfg, *trainer_parts())
    assert type(trainer) is SimpleTrainer and not isinstance(trainer, AMPTrainer)
    assert 'train.amp.enabled is ignored on the CPU' in caplog.text
    # AMP off: SimpleTrainer without a warning
    cfg = d2_cfg('train.device=cpu', 'train.amp.enabled=False')
    assert type(train_net.build_trainer(cfg, *trainer_parts())) is SimpleTrainer


def test_train_net_bad_precision_names_the_choices(train_net):
    cfg = d2_cfg('train.device=cpu', 'train.amp.precision=fp8')
    with pytest.raises(ValueError, match="'float16', 'bfloat16'"):
        train_net.build_trainer(cfg, *trainer_parts())
