"""One whole Mask R-CNN training step with a Hiera or a Swin-T backbone, timed in alternating
rounds (``tools/analysis_tools/benchmark_backbone.py --train-step``).

The model is mmdet's ``mask-rcnn_r50_fpn_1x_coco.py`` with its backbone swapped and the neck's
``in_channels`` taken from the backbone; the optimizer is AdamW as in the Swin recipe; the data
is ``mmdet.testing.demo_mm_inputs`` with masks. The backbone-only comparison, which needs no mm
package, is ``hiera_mm.benchmark``.
"""
import contextlib
import copy
import math
import time

from ..benchmark.contenders import SWIN_T, init_quietly
from ..benchmark.timing import DTYPES, alternate, summarize
from ..archs import ARCH_SETTINGS

BASE_CONFIG = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
NUM_CLASSES = 80


def backbone_config(kind: str, arch: str):
    """(backbone config, the channels of its four outputs) for 'hiera' (of ``arch``) or 'swin'."""
    if kind == 'hiera':
        embed = ARCH_SETTINGS[arch]['embed_dim']
        return (dict(type='HieraBackbone', arch=arch, drop_path_rate=0.1, attention='exact',
                     init_cfg=None),
                [embed * 2 ** i for i in range(4)])
    return (dict(type='SwinTransformer', **SWIN_T, mlp_ratio=4, qkv_bias=True, qk_scale=None,
                 drop_rate=0., attn_drop_rate=0., drop_path_rate=0.2, patch_norm=True,
                 with_cp=False, convert_weights=True, init_cfg=None),
            [96, 192, 384, 768])


def build_mask_rcnn(kind: str, arch: str):
    import torch
    from mmdet.registry import MODELS
    from mmengine.hub import get_config
    from mmengine.registry import init_default_scope
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
