#!/usr/bin/env python
"""Speed and memory of the Hiera backbone against other implementations and backbones.

    python tools/benchmark.py [--contenders NAME ...] [--arch tiny] [--size H W] [--batch 1]
                              [--dtype fp32|bf16|fp16] [--device cpu|cuda] [--threads N]
                              [--runs 5] [--warmup 2] [--mode fwd|fwdbwd|both]
                              [--baseline hf-hiera] [--isolate] [--train-step] [--compile]
                              [--with-cp-memory] [--no-timing] [--quick] [--out results.json]

Contenders (``--contenders``, default: every one that can be built here):

    hiera_mm-exact              hiera_mm's Hiera, attention='exact' (the pretrained computation)
    hiera_mm-windowed           attention='windowed', default global_blocks (last stage-3 block)
    hiera_mm-windowed-noglobal  attention='windowed', global_blocks=()
    hf-hiera                    transformers' HieraModel, interpolate_pos_encoding=True
    swin-t                      mmdet's SwinTransformer, Swin-T settings (timm's without mmdet)
    r50                         mmdet's ResNet-50 (timm's without mmdet)

A hiera_mm row may name another copy of hiera.py, ``hiera_mm-exact@/tmp/hiera.py``, to time a
change against the current file in the same alternating rounds.

The hiera_mm rows time the bare trunk of ``hiera_mm/models/hiera.py``, loaded by file path so
that it runs where only torch is installed (``--mm-backbone`` times mmdet's ``HieraBackbone``
instead: padding, output norms, NCHW). ``--arch`` picks the Hiera size of the hiera_mm and hf rows.
Weights are random (the speed does not depend on them); drop path is off in every contender.

Method. All contenders are built first; then every round times each contender once, in an order
rotated by one per round, so that drift of a shared machine hits all of them alike. ``--warmup``
rounds are discarded, the median (and min) of ``--runs`` rounds is reported, with the time ratio
to ``--baseline`` and to swin-t (< 1 = faster; the JSON also has the median of the per-round
ratios, and the process CPU time of every call). Forward runs under ``torch.inference_mode`` in
eval mode; forward+backward in train mode sums the means of the outputs and calls backward.
``--dtype bf16|fp16`` runs under ``torch.autocast``.

Memory. With ``--isolate`` each contender (and mode) is also run once in a fresh process of this
script (the hidden ``--single NAME``). On CPU that process reports its peak resident set size:
``VmHWM`` of /proc/self/status, and ``getrusage(RUSAGE_SELF).ru_maxrss``. Both include the
Python/torch/library baseline, so a process that only imports torch is measured too, and each
process also reports its peak after its imports, before building anything. (On Linux a child
started by vfork/posix_spawn, as ``subprocess`` does, inherits the parent's ``ru_maxrss``
high-water mark through exec, so ``ru_maxrss`` can overstate a child's peak; ``VmHWM`` is the
process's own and is the number reported.) On CUDA the peak is
``torch.cuda.max_memory_allocated``. Memory numbers come from the isolated processes, timings from
the alternating in-process rounds.

Extras:
    --train-step      one whole Mask R-CNN training step (mmdet's mask-rcnn_r50_fpn_1x_coco model,
                      backbone swapped for HieraBackbone or Swin-T, AdamW as the Swin recipe) on
                      ``mmdet.testing.demo_mm_inputs`` data with masks; alternating rounds.
    --compile         torch.compile of the hiera_mm-exact trunk: max |compiled - eager| over the
                      outputs at three input sizes, graphs compiled per size (recompiles), and
                      compiled vs eager forward time at --size (alternating rounds).
                      --compile-dynamic false|true|auto (default false: one graph per size,
                      bounded by --compile-cache-limit), --compile-backend (default inductor;
                      aot_eager checks tracing and numerics without C++ code generation).
    --with-cp-memory  peak training (fwd+bwd) memory of Hiera with with_cp=True vs False, each in
                      its own process (--cp-arch, default base; --size/--batch as given).
    --no-timing       skip the backbone rounds (run only the extras above).
    --quick           128x128, 1 run, 0 warmup, tiny arch (settings given explicitly still win);
                      seconds, for tests.

The markdown tables go to stdout; ``--out`` writes every number as JSON together with the machine
(CPU model, threads, torch version, device).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import json
import math
import os
import os.path as osp
import platform
import resource
import statistics
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
HIERA_FILE = osp.join(REPO_ROOT, 'hiera_mm', 'models', 'hiera.py')

HIERA_CONTENDERS = {
    # name: (attention, global_blocks)
    'hiera_mm-exact': ('exact', None),
    'hiera_mm-windowed': ('windowed', None),
    'hiera_mm-windowed-noglobal': ('windowed', ()),
}
ALL_CONTENDERS = tuple(HIERA_CONTENDERS) + ('hf-hiera', 'swin-t', 'r50')
SWIN_T = dict(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
              out_indices=(0, 1, 2, 3))
SECOND_REFERENCE = 'swin-t'
SINGLE_TAG = 'BENCH_SINGLE_JSON '
BASELINE_PROCESS = '__torch_only__'
DTYPES = {'fp32': 'float32', 'bf16': 'bfloat16', 'fp16': 'float16'}
QUICK = dict(size=(128, 128), runs=1, warmup=0, arch='tiny', cp_arch='tiny')
DEFAULTS = dict(size=(800, 1344), runs=5, warmup=2, arch='tiny', cp_arch='base')


# ---------------------------------------------------------------------------------------------
# Environment
def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


_MMDET_ERROR = []


def mmdet_error() -> str | None:
    """None when mmdet's models import here, else why not (mmdet or mmcv missing or broken)."""
    if not _MMDET_ERROR:
        try:
            import mmdet.models.backbones  # noqa: F401
            _MMDET_ERROR.append(None)
        except Exception as e:  # ImportError, or mmcv built without its ops, ...
            _MMDET_ERROR.append(f'{type(e).__name__}: {e}'.splitlines()[0][:200])
    return _MMDET_ERROR[0]


def have_mmdet() -> bool:
    return has_module('mmdet') and mmdet_error() is None


def load_hiera_module(path: str | None = None):
    """``hiera_mm.models.hiera`` (plain torch, importable without the OpenMMLab stack), or another
    copy of that file at ``path`` (e.g. an older revision, to compare) as a standalone module."""
    path = osp.abspath(path or HIERA_FILE)
    if path == HIERA_FILE:
        if REPO_ROOT not in sys.path:
            sys.path.insert(0, REPO_ROOT)
        import hiera_mm.models.hiera
        return hiera_mm.models.hiera
    name = 'hiera_mm_standalone_hiera'
    if path != HIERA_FILE:
        name += '_' + ''.join(c if c.isalnum() else '_' for c in path)
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def import_hiera_mm():
    """``import hiera_mm.mmdet`` (registers HieraBackbone in mmdet), from a plain checkout too."""
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    import hiera_mm.mmdet  # noqa: F401
    return sys.modules['hiera_mm']


def cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.lower().startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_status() -> dict:
    """This process's peak/current RSS in MiB (VmHWM/VmRSS where /proc exists) and ru_maxrss."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    out = {'ru_maxrss_mib': maxrss / (2 ** 20 if sys.platform == 'darwin' else 1024)}
    try:
        with open('/proc/self/status') as f:
            for line in f:
                key = line.split(':', 1)[0]
                if key in ('VmHWM', 'VmRSS'):
                    out[key.lower() + '_mib'] = int(line.split()[1]) / 1024
    except OSError:
        pass
    out['peak_rss_mib'] = out.get('vmhwm_mib', out['ru_maxrss_mib'])
    return out


def machine_info(args) -> dict:
    import torch
    info = {
        'cpu_model': cpu_model(),
        'logical_cpus': os.cpu_count(),
        'torch_threads': torch.get_num_threads(),
        'torch_version': torch.__version__,
        'python_version': platform.python_version(),
        'platform': platform.platform(),
        'device': args.device,
        'device_name': (torch.cuda.get_device_name() if args.device == 'cuda' else cpu_model()),
        'cuda_version': torch.version.cuda,
    }
    from importlib import metadata
    for dist in ('transformers', 'timm', 'mmdet', 'mmcv', 'mmengine'):
        try:  # from the installed metadata: importing them all would take seconds and memory
            info[f'{dist}_version'] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        info['load_average'] = os.getloadavg()
    except OSError:
        pass
    return info


# ---------------------------------------------------------------------------------------------
# Contenders
class Contender:
    """A model and how to call it: ``run(x)`` returns a list of output tensors."""

    def __init__(self, name, module, run, impl):
        self.name, self.module, self.run, self.impl = name, module, run, impl
        self.params_m = sum(p.numel() for p in module.parameters()) / 1e6


def split_contender(name: str) -> tuple[str, str | None]:
    """'hiera_mm-exact@/tmp/hiera.py' -> ('hiera_mm-exact', '/tmp/hiera.py')."""
    base, _, path = name.partition('@')
    return base, (path or None)


def unavailable_reason(name: str, args) -> str | None:
    """Why ``name`` cannot be built here (None when it can)."""
    name, path = split_contender(name)
    if path is not None:
        if name not in HIERA_CONTENDERS:
            return 'only the hiera_mm contenders take @path/to/hiera.py'
        if args.mm_backbone:
            return '--mm-backbone times the installed hiera_mm, not @path/to/hiera.py'
        if not osp.isfile(path):
            return f'no file {path}'
    if name in HIERA_CONTENDERS:
        if args.mm_backbone and not have_mmdet():
            return '--mm-backbone needs mmdet'
        return None
    if name == 'hf-hiera':
        if not has_module('transformers'):
            return 'transformers is not installed'
        if args.arch not in ('tiny', 'small', 'base', 'base_plus', 'large', 'huge'):
            return f"transformers' HieraModel has no '{args.arch}' (SAM2) trunk"
        return None
    if name in ('swin-t', 'r50'):
        if have_mmdet() or has_module('timm'):
            return None
        return 'neither mmdet nor timm is installed'
    return f'unknown contender (choose from {", ".join(ALL_CONTENDERS)})'


def init_quietly(model) -> None:
    """``model.init_weights()`` without mmengine's per-parameter INFO log (hundreds of lines)."""
    try:
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
    except ImportError:
        model.init_weights()
        return
    level = logger.level
    logger.setLevel('WARNING')
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def _pad_to(x, divisor):
    import torch.nn.functional as F
    pad_h, pad_w = (-x.shape[-2]) % divisor, (-x.shape[-1]) % divisor
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


def build_hiera_trunk(arch, attention='exact', global_blocks=None, with_cp=False, path=None):
    hiera = load_hiera_module(path)
    model = hiera.build_hiera(arch, attention=attention, global_blocks=global_blocks,
                              with_cp=with_cp)
    model.init_weights()
    return model


def build_contender(name: str, args, with_cp: bool = False) -> Contender:
    import torch
    torch.manual_seed(0)
    H, W = args.size
    name, path = split_contender(name)
    if name in HIERA_CONTENDERS:
        attention, global_blocks = HIERA_CONTENDERS[name]
        if args.mm_backbone:
            import_hiera_mm()
            from hiera_mm.mmdet.backbone import HieraBackbone
            model = HieraBackbone(arch=args.arch, attention=attention,
                                  global_blocks=global_blocks, with_cp=with_cp)
            init_quietly(model)
            return Contender(name, model, lambda x: list(model(x)),
                             f'hiera_mm HieraBackbone(arch={args.arch!r}, '
                             f'attention={attention!r}, global_blocks={global_blocks})')
        model = build_hiera_trunk(args.arch, attention, global_blocks, with_cp, path)
        divisor = model.size_divisor
        return Contender(name, model, lambda x: model(_pad_to(x, divisor)),
                         f'{path or "hiera.py"} Hiera(arch={args.arch!r}, '
                         f'attention={attention!r}, global_blocks={model.global_blocks})')
    if name == 'hf-hiera':
        from transformers import HieraConfig, HieraModel
        hiera = load_hiera_module()
        s = hiera.ARCH_SETTINGS[args.arch]
        config = HieraConfig(embed_dim=s['embed_dim'], depths=list(s['depths']),
                             num_heads=list(s['num_heads']))
        model = HieraModel(config, add_pooling_layer=False)

        def run(x):
            return [model(pixel_values=_pad_to(x, 32),
                          interpolate_pos_encoding=True).last_hidden_state]
        return Contender(name, model, run, f'transformers HieraModel ({args.arch}), '
                                           'interpolate_pos_encoding=True, last_hidden_state')
    if name == 'swin-t':
        if have_mmdet():
            from mmdet.models.backbones import SwinTransformer
            model = SwinTransformer(**SWIN_T, drop_path_rate=0.0)
            init_quietly(model)
            impl = 'mmdet SwinTransformer (Swin-T)'
        else:
            import timm
            model = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False,
                                      features_only=True, img_size=(H, W),
                                      strict_img_size=False, drop_path_rate=0.0)
            impl = f'timm swin_tiny_patch4_window7_224 features_only, img_size=({H}, {W})'
        return Contender(name, model, lambda x: list(model(x)), impl)
    if name == 'r50':
        if have_mmdet():
            from mmdet.models.backbones import ResNet
            model = ResNet(depth=50, out_indices=(0, 1, 2, 3))
            init_quietly(model)
            impl = 'mmdet ResNet(depth=50)'
        else:
            import timm
            model = timm.create_model('resnet50', pretrained=False, features_only=True,
                                      out_indices=(1, 2, 3, 4))
            impl = 'timm resnet50 features_only'
        return Contender(name, model, lambda x: list(model(x)), impl)
    raise ValueError(f'unknown contender {name!r}')


# ---------------------------------------------------------------------------------------------
# Timing
class Runner:
    """Times one call of a contender in 'fwd' or 'fwdbwd' mode on the configured device/dtype."""

    def __init__(self, args):
        import torch
        self.torch = torch
        self.device = torch.device(args.device)
        self.cuda = self.device.type == 'cuda'
        self.dtype = getattr(torch, DTYPES[args.dtype])
        H, W = args.size
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(args.batch, 3, H, W, generator=gen).to(self.device)

    def autocast(self):
        if self.dtype == self.torch.float32:
            return contextlib.nullcontext()
        return self.torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def prepare(self, contender, mode):
        contender.module.train(mode == 'fwdbwd')

    def __call__(self, contender, mode, x=None):
        """Seconds for one call; (seconds, CUDA peak bytes above the memory in use before)."""
        torch = self.torch
        x = self.x if x is None else x
        module = contender.module
        if mode == 'fwdbwd':
            module.zero_grad(set_to_none=True)
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        self.sync()
        t0, c0 = time.perf_counter(), time.process_time()
        if mode == 'fwd':
            with torch.inference_mode(), self.autocast():
                outs = contender.run(x)
        else:
            with self.autocast():
                outs = contender.run(x)
                loss = sum(o.float().mean() for o in outs)
            loss.backward()
        self.sync()
        seconds = time.perf_counter() - t0
        self.last_cpu_s = time.process_time() - c0  # all threads of this process
        peak = torch.cuda.max_memory_allocated() - before if self.cuda else None
        del outs
        return seconds, peak


def alternate(items, timer, runs, warmup, label=''):
    """``timer(item)`` for every item once per round, order rotated per round; -> {item: [s]}."""
    times = {k: [] for k in items}
    keys = list(items)
    total = warmup + runs
    for r in range(total):
        shift = r % len(keys)
        order = keys[shift:] + keys[:shift]
        for k in order:
            t = timer(k)
            if r >= warmup:
                times[k].append(t)
        tag = 'warmup' if r < warmup else 'run'
        done = ', '.join(f'{k} {times[k][-1] * 1e3:.0f} ms' for k in keys if times[k]
                         and r >= warmup)
        print(f'  [{label}] round {r + 1}/{total} ({tag}) {done}', file=sys.stderr, flush=True)
    return times


def summarize(seconds: list, batch: int, cpu_seconds: list | None = None) -> dict:
    med = statistics.median(seconds)
    out = {'times_ms': [s * 1e3 for s in seconds], 'median_ms': med * 1e3,
           'min_ms': min(seconds) * 1e3, 'images_per_s': batch / med if med > 0 else math.nan}
    if cpu_seconds:
        # Process CPU time (all threads) of the same calls: on a shared machine, wall time far
        # above cpu time / threads means the process waited for the cores.
        out['cpu_times_ms'] = [s * 1e3 for s in cpu_seconds]
        out['cpu_median_ms'] = statistics.median(cpu_seconds) * 1e3
    return out


def add_ratios(results: dict, mode: str, references: list):
    """Time ratios (contender / reference): of the medians, and the median of per-round ratios."""
    for ref in references:
        if ref not in results or mode not in results[ref]:
            continue
        ref_row = results[ref][mode]
        for row in results.values():
            if mode not in row:
                continue
            r = row[mode]
            r[f'ratio_vs_{ref}'] = r['median_ms'] / ref_row['median_ms']
            pairs = [a / b for a, b in zip(r['times_ms'], ref_row['times_ms'])]
            r[f'paired_ratio_vs_{ref}'] = statistics.median(pairs) if pairs else math.nan


# ---------------------------------------------------------------------------------------------
# Isolated processes (peak memory)
def single_main(args):
    """Hidden ``--single NAME``: build one contender, one call in ``--mode``, report memory."""
    import torch
    torch.set_num_threads(args.threads)
    report = {'name': args.single, 'mode': args.mode}
    if args.single == BASELINE_PROCESS:
        report['after_import'] = memory_status()
        report['end'] = memory_status()
        print(SINGLE_TAG + json.dumps(report), flush=True)
        return
    # Import what the contender needs before measuring the import baseline.
    if args.single == 'hf-hiera':
        import transformers  # noqa: F401
    elif args.single in ('swin-t', 'r50'):
        __import__('mmdet.models.backbones' if have_mmdet() else 'timm')
    elif args.mm_backbone:
        import_hiera_mm()
    load_hiera_module(split_contender(args.single)[1])
    report['after_import'] = memory_status()
    contender = build_contender(args.single, args, with_cp=bool(args.single_with_cp))
    runner = Runner(args)
    contender.module.to(runner.device)
    report['after_build'] = memory_status()
    if runner.cuda:
        report['cuda_allocated_after_build_mib'] = torch.cuda.memory_allocated() / 2 ** 20
    runner.prepare(contender, args.mode)
    seconds, _ = runner(contender, args.mode)
    report['single_call_ms'] = seconds * 1e3
    report['end'] = memory_status()
    if runner.cuda:
        report['cuda_max_allocated_mib'] = torch.cuda.max_memory_allocated() / 2 ** 20
    report['with_cp'] = bool(args.single_with_cp)
    report['arch'] = args.arch
    print(SINGLE_TAG + json.dumps(report), flush=True)


def run_isolated(args, name, mode, with_cp=False, arch=None):
    """One ``--single`` child process; returns its report (or {'error': ...})."""
    H, W = args.size
    cmd = [sys.executable, osp.abspath(__file__), '--single', name, '--mode', mode,
           '--arch', arch or args.arch, '--size', str(H), str(W), '--batch', str(args.batch),
           '--dtype', args.dtype, '--device', args.device, '--threads', str(args.threads),
           '--single-with-cp', str(int(with_cp))]
    if args.mm_backbone:
        cmd.append('--mm-backbone')
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    print(f'  [isolate] {name} {mode}{" with_cp" if with_cp else ""} ...', file=sys.stderr,
          flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(SINGLE_TAG):
            report = json.loads(line[len(SINGLE_TAG):])
            report['peak_mib'] = (report['cuda_max_allocated_mib'] if args.device == 'cuda'
                                  else report['end']['peak_rss_mib'])
            if 'after_build' in report:
                base = ('cuda_allocated_after_build_mib' if args.device == 'cuda' else None)
                built = report[base] if base else report['after_build']['peak_rss_mib']
                report['peak_above_build_mib'] = report['peak_mib'] - built
                if args.device != 'cuda':
                    report['peak_above_import_mib'] = (
                        report['peak_mib'] - report['after_import']['peak_rss_mib'])
            return report
    tail = (proc.stderr or proc.stdout or '').strip().splitlines()[-5:]
    return {'error': f'exit code {proc.returncode}: ' + ' | '.join(tail)}


# ---------------------------------------------------------------------------------------------
# Mask R-CNN training step
def build_mask_rcnn(backbone: str, args):
    import torch
    from mmengine.hub import get_config
    from mmengine.registry import init_default_scope
    import_hiera_mm()
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = get_config('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    model_cfg = copy.deepcopy(cfg.model)
    if backbone == 'hiera':
        hiera = load_hiera_module()
        embed = hiera.ARCH_SETTINGS[args.arch]['embed_dim']
        model_cfg.backbone = dict(type='HieraBackbone', arch=args.arch, drop_path_rate=0.1,
                                  attention='exact', init_cfg=None)
        in_channels = [embed * 2 ** i for i in range(4)]
    else:
        model_cfg.backbone = dict(type='SwinTransformer', **SWIN_T, mlp_ratio=4, qkv_bias=True,
                                  qk_scale=None, drop_rate=0., attn_drop_rate=0.,
                                  drop_path_rate=0.2, patch_norm=True, with_cp=False,
                                  convert_weights=True, init_cfg=None)
        in_channels = [96, 192, 384, 768]
    model_cfg.neck.in_channels = in_channels
    model_cfg.roi_head.bbox_head.num_classes = 80
    model_cfg.roi_head.mask_head.num_classes = 80
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    init_quietly(model)
    return model


def train_step_benchmark(args) -> dict:
    """Alternating rounds of one whole training step (preprocess, loss, backward, AdamW step)."""
    import torch
    from mmengine.optim import OptimWrapper
    from mmdet.testing import demo_mm_inputs
    H, W = args.size
    data = demo_mm_inputs(batch_size=args.batch, image_shapes=[(3, H, W)] * args.batch,
                          num_classes=80, with_mask=True)
    names = {'mask-rcnn_hiera-' + args.arch: 'hiera', 'mask-rcnn_swin-t': 'swin'}
    models, wrappers = {}, {}
    for name, kind in names.items():
        model = build_mask_rcnn(kind, args).to(args.device).train()
        models[name] = model
        # The optimizer of mmdet's Swin (and hiera_mm's) Mask R-CNN recipe.
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999),
                                      weight_decay=0.05)
        wrappers[name] = OptimWrapper(optimizer)
    losses = {name: [] for name in names}
    use_amp = args.dtype != 'fp32'

    def step(name):
        batch = copy.deepcopy(data)
        ctx = (torch.autocast(device_type=args.device, dtype=getattr(torch, DTYPES[args.dtype]))
               if use_amp else contextlib.nullcontext())
        if args.device == 'cuda':
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with ctx:
            log_vars = models[name].train_step(batch, wrappers[name])
        if args.device == 'cuda':
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        losses[name].append(float(torch.as_tensor(log_vars['loss']).detach()))
        return seconds

    times = alternate(list(names), step, args.runs, args.warmup, 'train-step')
    out = {'model': "mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py, backbone swapped, "
                    'neck in_channels from the backbone, 80 classes',
           'optimizer': 'AdamW(lr=1e-4, weight_decay=0.05)',
           'data': f'mmdet.testing.demo_mm_inputs, {args.batch} x 3 x {H} x {W}, with masks',
           'results': {}}
    for name in names:
        row = summarize(times[name], args.batch)
        row['params_M'] = sum(p.numel() for p in models[name].parameters()) / 1e6
        row['losses'] = losses[name]
        row['loss_finite'] = all(math.isfinite(v) for v in losses[name])
        out['results'][name] = row
    ref = out['results']['mask-rcnn_swin-t']
    for row in out['results'].values():
        row['ratio_vs_swin-t'] = row['median_ms'] / ref['median_ms']
    return out


# ---------------------------------------------------------------------------------------------
# torch.compile
def compile_sizes(args):
    H, W = args.size
    return [(H, W), (max(64, H - 32), W), (H, max(64, W - 32))]


def compile_benchmark(args, runner) -> dict:
    """Compiled vs eager hiera_mm-exact: max |diff| and graphs compiled over three sizes, time."""
    import torch
    import torch._dynamo
    from torch._dynamo.backends.registry import lookup_backend
    model = build_hiera_trunk(args.arch, 'exact').to(runner.device).eval()
    cfg = torch._dynamo.config
    for key in ('recompile_limit', 'cache_size_limit'):  # renamed in torch 2.6
        if hasattr(cfg, key):
            setattr(cfg, key, args.compile_cache_limit)
    backend = lookup_backend(args.compile_backend)
    graphs = {'n': 0}

    def counting_backend(gm, example_inputs):
        graphs['n'] += 1
        return backend(gm, example_inputs)

    dynamic = {'false': False, 'true': True, 'auto': None}[args.compile_dynamic]
    compiled = torch.compile(model, backend=counting_backend, dynamic=dynamic)
    per_size, max_diff = [], 0.0
    gen = torch.Generator().manual_seed(1)
    for H, W in compile_sizes(args):
        x = torch.randn(args.batch, 3, H, W, generator=gen).to(runner.device)
        before = graphs['n']
        t0 = time.perf_counter()
        with torch.inference_mode(), runner.autocast():
            out_c = compiled(x)
        runner.sync()
        first_call = time.perf_counter() - t0
        with torch.inference_mode(), runner.autocast():
            out_e = model(x)
        diff = max(float((a.float() - b.float()).abs().max()) for a, b in zip(out_c, out_e))
        max_diff = max(max_diff, diff)
        per_size.append({'size': [H, W], 'graphs_compiled': graphs['n'] - before,
                         'first_call_s': first_call, 'max_abs_diff': diff})
        print(f'  [compile] {H}x{W}: {graphs["n"] - before} graph(s) compiled, first call '
              f'{first_call:.1f} s, max |diff| {diff:.2e}', file=sys.stderr, flush=True)
    eager = Contender('eager', model, model, 'eager')
    comp = Contender('compiled', model, compiled, 'compiled')
    pair = {'eager': eager, 'compiled': comp}
    times = alternate(list(pair), lambda k: runner(pair[k], 'fwd')[0], args.runs, args.warmup,
                      'compile')
    result = {
        'model': f'hiera_mm-exact ({args.arch})',
        'settings': f'torch.compile(backend={args.compile_backend}, dynamic={dynamic}), '
                    f'recompile limit {args.compile_cache_limit}',
        'sizes': per_size,
        'max_abs_diff': max_diff,
        'total_graphs_compiled': graphs['n'],
        'recompiles': sum(1 for s in per_size[1:] if s['graphs_compiled'] > 0),
        'eager': summarize(times['eager'], args.batch),
        'compiled': summarize(times['compiled'], args.batch),
    }
    result['compiled_over_eager'] = result['compiled']['median_ms'] / result['eager']['median_ms']
    result['compiled_is_slower'] = result['compiled_over_eager'] > 1.0
    return result


# ---------------------------------------------------------------------------------------------
# Output
def fmt(v, digits=1):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return '-'
    return f'{v:.{digits}f}'


def print_tables(results: dict):
    cfg, rows = results['config'], results['contenders']
    print(f"\n## Benchmark: {cfg['batch']} x 3 x {cfg['size'][0]} x {cfg['size'][1]}, "
          f"{cfg['dtype']}, {cfg['device']} ({results['machine']['device_name']}), "
          f"{cfg['threads']} threads, Hiera arch {cfg['arch']}, median of {cfg['runs']} "
          f"alternating rounds after {cfg['warmup']} warmup\n")
    if rows:
        print("'t / X': median time over X's (< 1: faster). 'cpu ms': process CPU time of the "
              'same calls, all threads (well below threads x wall time: the process waited for '
              'cores that other work held).\n')
    refs = [r for r in dict.fromkeys((cfg['baseline'], SECOND_REFERENCE)) if r in rows]
    for mode in ('fwd', 'fwdbwd'):
        if not any(mode in r for r in rows.values()):
            continue
        head = ['contender', 'params (M)', 'median ms', 'min ms', 'cpu ms', 'img/s']
        head += [f't / {r}' for r in refs]
        print(f"### {'forward' if mode == 'fwd' else 'forward + backward'}\n")
        print('| ' + ' | '.join(head) + ' |')
        print('|' + '---|' * len(head))
        for name, row in rows.items():
            if mode not in row:
                continue
            r = row[mode]
            cells = [name, fmt(row['params_M']), fmt(r['median_ms']), fmt(r['min_ms']),
                     fmt(r.get('cpu_median_ms')), fmt(r['images_per_s'], 3)]
            cells += [fmt(r.get(f'ratio_vs_{ref}'), 2) for ref in refs]
            print('| ' + ' | '.join(cells) + ' |')
        print()
    mem = results.get('memory')
    if mem:
        unit = 'CUDA max_memory_allocated' if cfg['device'] == 'cuda' else 'peak RSS (VmHWM)'
        print(f'### Peak memory, one call per fresh process ({unit}, MiB)\n')
        if 'torch_only_process' in mem:
            print(f"Baseline: a process that only imports torch peaks at "
                  f"{fmt(mem['torch_only_process'].get('peak_mib'))} MiB; 'after imports' is "
                  'the same process before building its model.\n')
        print('| contender | mode | peak | after imports | peak - after imports | '
              'peak - after build |')
        print('|---|---|---|---|---|---|')
        for name, modes in mem.get('contenders', {}).items():
            for mode, rep in modes.items():
                if 'error' in rep:
                    print(f'| {name} | {mode} | error: {rep["error"][:80]} | | | |')
                    continue
                after_import = rep.get('after_import', {}).get('peak_rss_mib')
                print(f"| {name} | {mode} | {fmt(rep['peak_mib'])} | {fmt(after_import)} | "
                      f"{fmt(rep.get('peak_above_import_mib'))} | "
                      f"{fmt(rep.get('peak_above_build_mib'))} |")
        print()
    ts = results.get('train_step')
    if ts:
        print(f"### One Mask R-CNN training step ({ts['data']}; {ts['optimizer']})\n")
        print('| model | params (M) | median ms | min ms | t / swin-t | loss finite |')
        print('|---|---|---|---|---|---|')
        for name, r in ts['results'].items():
            print(f"| {name} | {fmt(r['params_M'])} | {fmt(r['median_ms'])} | "
                  f"{fmt(r['min_ms'])} | {fmt(r['ratio_vs_swin-t'], 2)} | {r['loss_finite']} |")
        print()
    comp = results.get('compile')
    if comp:
        print(f"### torch.compile: {comp['model']}, {comp['settings']}\n")
        print('| size | graphs compiled | first call s | max abs diff |')
        print('|---|---|---|---|')
        for s in comp['sizes']:
            print(f"| {s['size'][0]}x{s['size'][1]} | {s['graphs_compiled']} | "
                  f"{fmt(s['first_call_s'])} | {s['max_abs_diff']:.2e} |")
        print(f"\nRecompiles over {len(comp['sizes'])} sizes: {comp['recompiles']}; max |compiled"
              f" - eager| = {comp['max_abs_diff']:.2e}. Forward at {cfg['size'][0]}x"
              f"{cfg['size'][1]}: eager {fmt(comp['eager']['median_ms'])} ms, compiled "
              f"{fmt(comp['compiled']['median_ms'])} ms (x{comp['compiled_over_eager']:.2f}, "
              f"{'slower' if comp['compiled_is_slower'] else 'faster'}).\n")
    cp = results.get('with_cp_memory')
    if cp:
        print(f"### Training peak memory with and without activation checkpointing "
              f"(Hiera-{cp['arch']}, {cfg['batch']} x 3 x {cfg['size'][0]} x {cfg['size'][1]}, "
              'fwd+bwd, fresh processes, MiB)\n')
        print('| with_cp | peak | peak - after build | one fwd+bwd ms |')
        print('|---|---|---|---|')
        for key in ('with_cp=False', 'with_cp=True'):
            rep = cp[key]
            if 'error' in rep:
                print(f'| {key} | error: {rep["error"][:80]} | | |')
            else:
                print(f"| {key} | {fmt(rep['peak_mib'])} | {fmt(rep['peak_above_build_mib'])} | "
                      f"{fmt(rep['single_call_ms'])} |")
        print(f"\nRatio with_cp / without: peak {fmt(cp.get('peak_ratio'), 3)}, above build "
              f"{fmt(cp.get('above_build_ratio'), 3)}.\n")
    if results['notes']:
        print('Notes:\n' + '\n'.join(f'- {n}' for n in results['notes']))


def finite_or_none(obj):
    """JSON cannot hold NaN/inf portably: replace them by None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--contenders', nargs='+', default=None,
                   help=f'names (space or comma separated) from: {", ".join(ALL_CONTENDERS)}; '
                        'default: all that can be built here. A hiera_mm row may name another '
                        'copy of hiera.py, e.g. hiera_mm-exact@/tmp/hiera.py, to compare a change')
    p.add_argument('--arch', default=None, help='Hiera size of the hiera_mm and hf rows '
                   '(tiny, small, base, base_plus, large, huge, sam2_*); default tiny')
    p.add_argument('--size', nargs=2, type=int, metavar=('H', 'W'), default=None,
                   help='input height and width (default 800 1344)')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--dtype', choices=sorted(DTYPES), default='fp32',
                   help='bf16/fp16 run under torch.autocast')
    p.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    p.add_argument('--threads', type=int, default=None,
                   help='torch.set_num_threads (default 2 on CPU, unchanged on CUDA)')
    p.add_argument('--runs', type=int, default=None, help='timed rounds (default 5)')
    p.add_argument('--warmup', type=int, default=None, help='discarded rounds (default 2)')
    p.add_argument('--mode', choices=['fwd', 'fwdbwd', 'both'], default='both')
    p.add_argument('--baseline', default='hf-hiera',
                   help='contender the time ratios refer to (also: swin-t)')
    p.add_argument('--mm-backbone', action='store_true',
                   help="time hiera_mm through mmdet's HieraBackbone instead of the bare trunk")
    p.add_argument('--isolate', action='store_true',
                   help='peak memory of each contender in a fresh process of this script')
    p.add_argument('--train-step', action='store_true',
                   help='one whole Mask R-CNN training step, Hiera vs Swin-T backbone')
    p.add_argument('--compile', action='store_true',
                   help='torch.compile of hiera_mm-exact: diff, recompiles, speed')
    p.add_argument('--compile-dynamic', choices=['false', 'true', 'auto'], default='false',
                   help='torch.compile dynamic= (auto: dynamo marks shapes dynamic after a '
                        'recompile); default false (one graph per size, bounded by the limit)')
    p.add_argument('--compile-backend', default='inductor',
                   help='torch.compile backend (aot_eager: traces and checks without codegen)')
    p.add_argument('--compile-cache-limit', type=int, default=8,
                   help='torch._dynamo recompile (cache size) limit')
    p.add_argument('--with-cp-memory', action='store_true',
                   help='training peak memory of Hiera with_cp=True vs False (fresh processes)')
    p.add_argument('--cp-arch', default=None, help='Hiera size for --with-cp-memory (base)')
    p.add_argument('--no-timing', action='store_true',
                   help='skip the backbone timing rounds (run only the selected extras)')
    p.add_argument('--quick', action='store_true',
                   help='128x128, 1 run, 0 warmup, tiny arch: a smoke run of seconds')
    p.add_argument('--out', default=None, help='write all results as JSON here')
    p.add_argument('--single', default=None, help=argparse.SUPPRESS)
    p.add_argument('--single-with-cp', type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for key, value in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, preset.get(key, value))
    args.size = tuple(args.size)
    if args.threads is None:
        args.threads = 2 if args.device == 'cpu' else 0
    if args.contenders is not None:
        args.contenders = [c for item in args.contenders for c in item.split(',') if c]
    if args.runs < 1 or args.warmup < 0 or args.batch < 1:
        p.error('--runs must be >= 1, --warmup >= 0, --batch >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('--device cuda: no CUDA device is available')
    if args.single:
        return single_main(args)

    notes = []
    requested = args.contenders or list(ALL_CONTENDERS)
    names = []
    for name in requested:
        why = unavailable_reason(name, args)
        if why is None:
            names.append(name)
        elif args.contenders is not None and name not in ALL_CONTENDERS:
            sys.exit(f'--contenders: {name}: {why}')
        else:
            notes.append(f'{name} skipped: {why}')
    if not have_mmdet() and any(n in names for n in ('swin-t', 'r50')):
        why = mmdet_error() if has_module('mmdet') else 'not installed'
        notes.append(f'mmdet is not importable ({why}): swin-t and r50 are timm models')
    if any(s % 32 for s in args.size) and any(split_contender(n)[0] in HIERA_CONTENDERS
                                              or n == 'hf-hiera' for n in names):
        notes.append('the input is zero-padded to multiples of 32 for the Hiera rows')

    results = {'command': [sys.executable] + sys.argv, 'machine': machine_info(args),
               'config': {k: v for k, v in vars(args).items() if k not in ('single',
                                                                           'single_with_cp')},
               'contenders': {}, 'notes': notes}
    modes = ['fwd', 'fwdbwd'] if args.mode == 'both' else [args.mode]

    # Isolated processes first, while this process is still small.
    if args.isolate and not args.no_timing:
        mem = {'contenders': {}}
        if args.device == 'cpu':
            mem['torch_only_process'] = run_isolated(args, BASELINE_PROCESS, 'fwd')
            mem['torch_only_process']['peak_mib'] = (
                mem['torch_only_process'].get('end', {}).get('peak_rss_mib'))
        for name in names:
            mem['contenders'][name] = {m: run_isolated(args, name, m) for m in modes}
        results['memory'] = mem
    if args.with_cp_memory:
        cp = {'arch': args.cp_arch, 'contender': 'hiera_mm-exact', 'mode': 'fwdbwd'}
        for flag in (False, True):
            cp[f'with_cp={flag}'] = run_isolated(args, 'hiera_mm-exact', 'fwdbwd', with_cp=flag,
                                                 arch=args.cp_arch)
        off, on = cp['with_cp=False'], cp['with_cp=True']
        if 'error' not in off and 'error' not in on:
            cp['peak_ratio'] = on['peak_mib'] / off['peak_mib']
            cp['above_build_ratio'] = (on['peak_above_build_mib'] / off['peak_above_build_mib']
                                       if off['peak_above_build_mib'] > 0 else math.nan)
        results['with_cp_memory'] = cp

    runner = Runner(args)
    if not args.no_timing and names:
        contenders = {}
        for name in names:
            t0 = time.perf_counter()
            contenders[name] = build_contender(name, args)
            contenders[name].module.to(runner.device)
            print(f'  built {name} ({contenders[name].params_m:.1f} M params, '
                  f'{time.perf_counter() - t0:.1f} s)', file=sys.stderr, flush=True)
        rows = results['contenders']
        for name, c in contenders.items():
            rows[name] = {'impl': c.impl, 'params_M': c.params_m}
        for mode in modes:
            for c in contenders.values():
                runner.prepare(c, mode)
            peaks, cpu = {}, {name: [] for name in names}

            def timer(name, mode=mode, peaks=peaks, cpu=cpu):
                seconds, peak = runner(contenders[name], mode)
                cpu[name].append(runner.last_cpu_s)
                if peak is not None:
                    peaks[name] = max(peaks.get(name, 0), peak)
                return seconds

            times = alternate(names, timer, args.runs, args.warmup, mode)
            for name in names:
                rows[name][mode] = summarize(times[name], args.batch, cpu[name][args.warmup:])
                if name in peaks:
                    rows[name][mode]['cuda_peak_above_resident_mib'] = peaks[name] / 2 ** 20
            add_ratios(rows, mode, [r for r in dict.fromkeys((args.baseline, SECOND_REFERENCE))
                                    if r in rows])
        if args.baseline not in rows:
            notes.append(f'baseline {args.baseline} was not run: no ratios to it')
        del contenders
    if args.train_step:
        if have_mmdet():
            results['train_step'] = train_step_benchmark(args)
        else:
            notes.append(f'--train-step skipped: mmdet is not importable '
                         f'({mmdet_error() if has_module("mmdet") else "not installed"})')
    if args.compile:
        results['compile'] = compile_benchmark(args, runner)
    try:
        results['machine']['load_average_end'] = os.getloadavg()
    except OSError:
        pass

    print_tables(results)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(finite_or_none(results), f, indent=2)
        print(f'\nwrote {args.out}')
    return results


if __name__ == '__main__':
    main()
