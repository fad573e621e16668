"""The OpenMMLab plug-in of the benchmark: rows and an extra that need mmdet (and mmengine).

Loading it registers
* mmdet's ``SwinTransformer`` (Swin-T) and ``ResNet`` (depth 50) as ``swin-t`` and ``r50``,
  preferred to timm's;
* the hiera_mm rows through ``HieraBackbone`` (padding, output norms, NCHW) for ``--mm-backbone``;
* the extra ``train_step`` (``--train-step``): one whole Mask R-CNN training step with a Hiera or
  a Swin-T backbone, timed in alternating rounds. The model is mmdet's
  ``mask-rcnn_r50_fpn_1x_coco.py`` with its backbone swapped and the neck's ``in_channels`` taken
  from the backbone; the optimizer is AdamW as in the Swin recipe; the data is
  ``mmdet.testing.demo_mm_inputs`` with masks.

Nothing of mmdet is imported until a row or the extra is built.
"""
import contextlib
import copy
import math
import time

from hiera_mm.archs import stage_widths

from . import environment
from .contenders import (HIERA_CONTENDERS, SWIN_T, Contender, Extra, Implementation, register,
                         register_extra)
from .report import fmt, table
from .timing import DTYPES, alternate, summarize

BASE_CONFIG = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
NUM_CLASSES = 80
MMDET_MODELS = 'mmdet.models.backbones'


def why_no_mmdet():
    """None when mmdet's models import here, else why not (mmdet or mmcv missing or broken)."""
    why = environment.import_error(MMDET_MODELS)
    return None if why is None else f'mmdet is not importable ({why})'


def init_quietly(model) -> None:
    """``model.init_weights()`` without mmengine's per-parameter INFO log (hundreds of lines)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


# ----------------------------------------------------------------------------------------------
# rows
def build_swin_t(name, args, with_cp=False):
    from mmdet.models.backbones import SwinTransformer
    model = SwinTransformer(**SWIN_T, drop_path_rate=0.0)
    init_quietly(model)
    return Contender(name, model, lambda x: list(model(x)), 'mmdet SwinTransformer (Swin-T)')


def build_r50(name, args, with_cp=False):
    from mmdet.models.backbones import ResNet
    model = ResNet(depth=50, out_indices=(0, 1, 2, 3))
    init_quietly(model)
    return Contender(name, model, lambda x: list(model(x)), 'mmdet ResNet(depth=50)')


def build_hiera_backbone(name, args, with_cp=False):
    from hiera_mm.openmmlab.backbone import HieraBackbone
    attention, global_blocks = HIERA_CONTENDERS[name]
    model = HieraBackbone(arch=args.arch, attention=attention, global_blocks=global_blocks,
                          with_cp=with_cp)
    init_quietly(model)
    return Contender(name, model, lambda x: list(model(x)),
                     f'hiera_mm HieraBackbone(arch={args.arch!r}, '
                     f'attention={attention!r}, global_blocks={global_blocks})')


def _mm_backbone_why_not(args):
    if not getattr(args, 'mm_backbone', False):
        return 'HieraBackbone rows run with --mm-backbone'
    return why_no_mmdet()


# ----------------------------------------------------------------------------------------------
# the extra: one Mask R-CNN training step
def backbone_config(kind: str, arch: str):
    """(backbone config, the channels of its four outputs) for 'hiera' (of ``arch``) or 'swin'."""
    if kind == 'hiera':
        return (dict(type='HieraBackbone', arch=arch, drop_path_rate=0.1, attention='exact',
                     init_cfg=None), stage_widths(arch))
    return (dict(type='SwinTransformer', **SWIN_T, mlp_ratio=4, qkv_bias=True, qk_scale=None,
                 drop_rate=0., attn_drop_rate=0., drop_path_rate=0.2, patch_norm=True,
                 with_cp=False, convert_weights=True, init_cfg=None),
            [96, 192, 384, 768])


def build_mask_rcnn(kind: str, arch: str):
    import torch
    from mmdet.registry import MODELS
    from mmengine.hub import get_config
    from mmengine.registry import init_default_scope

    import hiera_mm.mmdet  # noqa: F401  (registers HieraBackbone into mmdet)
    init_default_scope('mmdet')
    model_cfg = copy.deepcopy(get_config(BASE_CONFIG).model)
    model_cfg.backbone, model_cfg.neck.in_channels = backbone_config(kind, arch)
    model_cfg.roi_head.bbox_head.num_classes = NUM_CLASSES
    model_cfg.roi_head.mask_head.num_classes = NUM_CLASSES
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    init_quietly(model)
    return model


def build_trainable(kind: str, args):
    """(model on ``args.device`` in train mode, its OptimWrapper)."""
    import torch
    from mmengine.optim import OptimWrapper
    model = build_mask_rcnn(kind, args.arch).to(args.device).train()
    # The optimizer of mmdet's Swin (and hiera_mm's) Mask R-CNN recipe.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999),
                                  weight_decay=0.05)
    return model, OptimWrapper(optimizer)


def timed_train_step(model, optim_wrapper, data, args):
    """(seconds, loss) of one training step on a copy of ``data``."""
    import torch
    batch = copy.deepcopy(data)
    autocast = (torch.autocast(device_type=args.device, dtype=getattr(torch, DTYPES[args.dtype]))
                if args.dtype != 'fp32' else contextlib.nullcontext())
    if args.device == 'cuda':
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with autocast:
        log_vars = model.train_step(batch, optim_wrapper)
    if args.device == 'cuda':
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return seconds, float(torch.as_tensor(log_vars['loss']).detach())


def train_step_benchmark(args) -> dict:
    """Alternating rounds of one whole training step (preprocess, loss, backward, AdamW step)."""
    from mmdet.testing import demo_mm_inputs
    H, W = args.size
    data = demo_mm_inputs(batch_size=args.batch, image_shapes=[(3, H, W)] * args.batch,
                          num_classes=NUM_CLASSES, with_mask=True)
    kinds = {'mask-rcnn_hiera-' + args.arch: 'hiera', 'mask-rcnn_swin-t': 'swin'}
    trainables = {name: build_trainable(kind, args) for name, kind in kinds.items()}
    losses = {name: [] for name in kinds}

    def step(name):
        seconds, loss = timed_train_step(*trainables[name], data, args)
        losses[name].append(loss)
        return seconds

    times = alternate(list(kinds), step, args.runs, args.warmup, 'train-step')
    results = {}
    for name, (model, _) in trainables.items():
        row = summarize(times[name], args.batch)
        row['params_M'] = sum(p.numel() for p in model.parameters()) / 1e6
        row['losses'] = losses[name]
        row['loss_finite'] = all(math.isfinite(v) for v in losses[name])
        results[name] = row
    for row in results.values():
        row['ratio_vs_swin-t'] = row['median_ms'] / results['mask-rcnn_swin-t']['median_ms']
    return {'model': f'{BASE_CONFIG}, backbone swapped, neck in_channels from the backbone, '
                     f'{NUM_CLASSES} classes',
            'optimizer': 'AdamW(lr=1e-4, weight_decay=0.05)',
            'data': f'mmdet.testing.demo_mm_inputs, {args.batch} x 3 x {H} x {W}, with masks',
            'results': results}


def train_step_table(ts: dict, config=None) -> str:
    cells = [[name, fmt(r['params_M']), fmt(r['median_ms']), fmt(r['min_ms']),
              fmt(r['ratio_vs_swin-t'], 2), r['loss_finite']] for name, r in ts['results'].items()]
    head = ['model', 'params (M)', 'median ms', 'min ms', 't / swin-t', 'loss finite']
    return (f"### One Mask R-CNN training step ({ts['data']}; {ts['optimizer']})\n\n"
            + table(head, cells) + '\n')


register('swin-t', Implementation(build_swin_t, lambda args: why_no_mmdet(), imports=(MMDET_MODELS,)),
         first=True)
register('r50', Implementation(build_r50, lambda args: why_no_mmdet(), imports=(MMDET_MODELS,)),
         first=True)
for _name in HIERA_CONTENDERS:
    register(_name, Implementation(build_hiera_backbone, _mm_backbone_why_not, pads=True,
                                   imports=(MMDET_MODELS, 'hiera_mm.openmmlab.backbone')),
             first=True)
register_extra('train_step', Extra(train_step_benchmark, train_step_table, why_no_mmdet))
environment.REPORTED_DISTS.extend(d for d in ('mmdet', 'mmcv', 'mmengine')
                                  if d not in environment.REPORTED_DISTS)
