"""The GPU check: one command that answers, on one GPU and in minutes, whether the mixed-precision
run every user makes works and how fast it is.

    python tools/analysis_tools/gpu_check.py [--out DIR]             # on a GPU (<= 8 min, H200)
    python tools/analysis_tools/gpu_check.py --device cpu --quick    # the same code, small, CPU

Sections (``--sections`` picks some):

* ``env``: the device, torch and the installed frameworks.
* ``parity``: the trunk against transformers' ``HieraModel`` in fp32 (TF32 off), max abs
  difference <= 1e-4, random weights converted through ``hiera_mm.checkpoints`` (a
  ``save_pretrained`` folder loaded by ``HieraStages.load_pretrained``).
* ``autocast``: bf16 / fp16 stage maps against fp32 for every arch family (Hiera, SAM2, abswin):
  relative max error within the bounds of ``FEATURE_BOUND``; the maps are fp32 (the trunk's dtype
  policy: the residual stream stays fp32 under autocast).
* ``sdpa``: forward and backward with ``torch.nn.attention.sdpa_kernel`` restricted to the flash
  and memory-efficient backends, so that a fallback to the math kernel fails loudly (timm's Hiera
  fell back with 5-D q/k/v). On the CPU the flash backend is torch's fused CPU kernel.
* ``speed``: bf16 time and peak memory at 1024^2 and 2048^2, exact and windowed, batch 1
  (inference) and a training batch (forward + backward), eager and ``torch.compile``; against
  transformers' HieraModel, timm's hiera, mmdet's Swin-T and SAM2's hieradet (each where
  installed, else a row says why not).
* ``train``: one AMP training iteration, fp16 and bf16, of Mask R-CNN Hiera-T through
  ``tools/train.py --amp`` (mmdet), of UperNet Hiera-T (mmseg), both on the toy data, and of the
  Detectron2 Mask R-CNN through ``AMPTrainer`` (``tools/detectron2/train_net.py``), each in a
  1-process NCCL group (gloo on the CPU); random init, run before ``speed``. mmengine's
  ``AmpOptimWrapper`` and Detectron2's ``AMPTrainer`` need CUDA: on the CPU those rows say "needs
  CUDA" (with the tool's own refusal). Expect mmdet's bf16 row to show mmcv 2.1's RoIAlign, which
  has no bf16 kernel (it dispatches float, double and half only).

It writes ``gpu_check.json`` and ``gpu_check.md`` (a Markdown table) to ``--out`` and exits 1 if a
check failed. ``--device cpu --quick`` runs every section at small sizes (tests/test_gpu_check.py).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import os.path as osp
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import torch

from hiera_mm.archs import ARCH_SETTINGS
from hiera_mm_tools.benchmark.environment import has_module, module_version

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The training iterations run before the speed rows, whose torch.compile rows stop at --budget-s.
SECTIONS = ('env', 'parity', 'autocast', 'sdpa', 'train', 'speed')
PARITY_TOL = 1e-4
# Relative max error of a stage map under autocast (max |amp - fp32| / max |fp32|); measured on
# the CPU about 1e-2 (bf16) and 1.5e-3 (fp16), see tests/test_amp.py.
FEATURE_BOUND = {'bf16': 3e-2, 'fp16': 5e-3}
DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
OK, FAIL, SKIP, NEEDS_CUDA, ERROR = 'ok', 'FAIL', 'skipped', 'needs CUDA', 'error'

# Sizes: (full run on a GPU, --quick). A size is the side of a square image.
SIZES = {False: (1024, 2048), True: (64,)}
TRAIN_BATCH = {1024: 8, 2048: 2, 64: 2}  # the forward + backward rows' batch
COMPILE_SIZES = {False: (1024,), True: (64,)}  # torch.compile rows (compiling takes the time)
SMALL = dict(embed_dim=32, depths=(1, 2, 2, 1), num_heads=(1, 2, 4, 8))
# The arch families at --quick: small widths and depths of each family's layout.
QUICK_FAMILIES = {
    'hiera': SMALL,
    'sam2': dict(SMALL, depths=(1, 2, 3, 1), window_sizes=(8, 4, 14, 7), global_blocks=(4,),
                 pos_embed='abs_win', pos_embed_size=(7, 7)),
    'abswin': dict(SMALL, pos_embed='abs_win', pos_embed_antialias=True, layer_scale=1e-5,
                   pretrain_size=256, pos_embed_size=(16, 16), expand_proj=False),
}
FULL_FAMILIES = {'hiera': 'tiny', 'sam2': 'sam2_tiny', 'abswin': 'abswin_small'}
MMDET_TOY = ('configs', 'toy', 'mask-rcnn_hiera-t_fpn_toy.py')
MMSEG_TOY = ('configs', 'mmseg', 'toy', 'upernet_hiera-t_toy.py')


class Report:
    """Rows of results: section, check, status and the measured values."""

    def __init__(self, args):
        self.rows = []
        self.args = args
        self.started = time.monotonic()

    def add(self, section, check, status, note='', **values):
        row = dict(section=section, check=check, status=status, note=note, **values)
        self.rows.append(row)
        shown = ', '.join(f'{k}={_fmt(v)}' for k, v in values.items())
        print(f'[{section}] {check}: {status}' + (f' ({shown})' if shown else '')
              + (f' - {note}' if note else ''), flush=True)
        return row

    def elapsed(self):
        return time.monotonic() - self.started

    @property
    def failed(self):
        return [r for r in self.rows if r['status'] == FAIL]

    def write(self, out_dir, env):
        os.makedirs(out_dir, exist_ok=True)
        data = dict(env=env, args={k: v for k, v in vars(self.args).items()},
                    seconds=round(self.elapsed(), 1), failed=len(self.failed), rows=self.rows)
        with open(osp.join(out_dir, 'gpu_check.json'), 'w') as f:
            json.dump(data, f, indent=1, default=str)
        with open(osp.join(out_dir, 'gpu_check.md'), 'w') as f:
            f.write(markdown(env, self.rows, self.elapsed()))
        return data


def _fmt(v):
    if isinstance(v, float):
        return f'{v:.3g}'
    return str(v)


def markdown(env, rows, seconds):
    lines = [f"GPU check on **{env.get('device_name')}** ({env.get('device')}), torch "
             f"{env.get('torch')}, {env.get('date')}, {seconds:.0f} s"
             + (' (--quick)' if env.get('quick') else ''), '',
             '| section | check | status | result | note |', '|---|---|---|---|---|']
    for r in rows:
        values = {k: v for k, v in r.items() if k not in ('section', 'check', 'status', 'note')}
        result = ', '.join(f'{k} {_fmt(v)}' for k, v in values.items())
        note = str(r['note']).replace('|', '/').replace('\n', ' ')
        lines.append(f"| {r['section']} | {r['check']} | {r['status']} | {result} | {note} |")
    return '\n'.join(lines) + '\n'


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def autocast(device, dtype):
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def randomize_(model, seed=0, std=0.05):
    """Non-trivial random weights (norm gains near 1, everything else around 0) so that a parity
    check cannot pass by luck."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            base = 1.0 if name.endswith('weight') and p.ndim == 1 else 0.0
            p.copy_(base + std * torch.randn(p.shape, generator=gen))
    return model


def rel_err(a, b):
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


# ----------------------------------------------------------------------------------------------
def environment(args, device):
    env = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
               device=str(device), torch=torch.__version__, python=platform.python_version(),
               quick=args.quick, host_cpu=platform.processor() or platform.machine())
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        env.update(device_name=props.name, capability=f'{props.major}.{props.minor}',
                   memory_gib=round(props.total_memory / 2 ** 30, 1), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), bf16=torch.cuda.is_bf16_supported())
    else:
        env.update(device_name='CPU (no GPU was used)', threads=torch.get_num_threads())
    for name in ('transformers', 'timm', 'mmengine', 'mmcv', 'mmdet', 'mmseg', 'detectron2',
                 'sam2'):
        env[name] = module_version(name) or 'not installed'
    return env


# ----------------------------------------------------------------------------------------------
def check_parity(report, args, device):
    """Our trunk against transformers' HieraModel in fp32, weights through hiera_mm.checkpoints."""
    if not has_module('transformers'):
        return report.add('parity', 'transformers HieraModel', SKIP, 'transformers not installed')
    import transformers

    from hiera_mm.models.stages import HieraStages
    arch = SMALL if args.quick else ARCH_SETTINGS['tiny']
    config = transformers.HieraConfig(embed_dim=arch['embed_dim'], depths=list(arch['depths']),
                                      num_heads=list(arch['num_heads']))
    hf = randomize_(transformers.HieraModel(config), seed=0).eval()
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with tempfile.TemporaryDirectory() as folder:
            hf.save_pretrained(folder)
            ours = HieraStages(dict(arch) if args.quick else 'tiny', out_norm=False)
            load = ours.load_pretrained(folder)
        ours.to(device).eval()
        hf.to(device)
        for size in ((224, 224), (448, 640)):
            x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1)).to(device)
            with torch.no_grad():
                maps = ours(x)
                if size == (224, 224):  # every stage (HF's reshaped states are NHWC)
                    out = hf(x, output_hidden_states=True)
                    theirs = [s.permute(0, 3, 1, 2) for s in out.reshaped_hidden_states[1:]]
                else:  # HF re-rolls its stages for 224 only; the last stage is order-free
                    out = hf(x, interpolate_pos_encoding=True)
                    maps = [maps[-1].flatten(2).transpose(1, 2)]
                    theirs = [out.last_hidden_state]
            diff = max(float((a - b).abs().max()) for a, b in zip(maps, theirs))
            report.add('parity', f'transformers HieraModel fp32 {size[0]}x{size[1]}',
                       OK if diff <= PARITY_TOL else FAIL,
                       f'{load.layout} layout, {load.trunk_tensors} tensors; TF32 off',
                       max_abs_diff=diff, tol=PARITY_TOL)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        del hf


# ----------------------------------------------------------------------------------------------
def amp_dtypes(device):
    """The autocast dtypes this device runs, and why another is left out."""
    dtypes, notes = [], []
    for name, dtype in DTYPES.items():
        if device.type == 'cuda' and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            notes.append(f'{name}: this GPU has no bf16')
            continue
        try:
            with torch.autocast(device.type, dtype=dtype):
                ok = torch.nn.functional.linear(torch.ones(2, 2, device=device),
                                                torch.ones(2, 2, device=device)).dtype == dtype
        except (RuntimeError, AssertionError):
            ok = False
        if ok:
            dtypes.append(name)
        else:
            notes.append(f'{name}: no {device.type} autocast in this torch')
    return dtypes, notes


def check_autocast(report, args, device):
    from hiera_mm.models.stages import HieraStages
    dtypes, notes = amp_dtypes(device)
    for note in notes:
        report.add('autocast', note.split(':')[0], SKIP, note)
    size = (128, 192) if args.quick else (512, 768)
    for family, arch in (QUICK_FAMILIES if args.quick else FULL_FAMILIES).items():
        for attention in ('exact', 'windowed'):
            if attention == 'windowed' and (family == 'sam2' or args.quick and family != 'hiera'):
                continue  # SAM2's trunk has its own windows; --quick: one windowed family
            model = HieraStages(arch, attention=attention)  # a dict keeps its global_blocks
            model = randomize_(model, seed=1).to(device).eval()
            x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0)).to(device)
            with torch.no_grad():
                ref = model(x)
            for name in dtypes:
                with torch.no_grad(), autocast(device, DTYPES[name]):
                    outs = model(x)
                errs = [rel_err(o, r) for o, r in zip(outs, ref)]
                policy = all(o.dtype == torch.float32 for o in outs)
                ok = max(errs) <= FEATURE_BOUND[name] and policy
                report.add('autocast', f'{family} {attention} {name}', OK if ok else FAIL,
                           '' if policy else 'stage maps are not fp32 (dtype policy broken)',
                           max_rel_err=max(errs), bound=FEATURE_BOUND[name],
                           per_stage=' / '.join(f'{e:.1e}' for e in errs))
            del model


# ----------------------------------------------------------------------------------------------
def sdpa_check(device, model, x, dtype, backends):
    """Forward + backward with SDPA restricted to ``backends``; the error text if none applies
    (torch raises instead of falling back to the math kernel)."""
    from torch.nn.attention import sdpa_kernel
    model.zero_grad(set_to_none=True)
    try:
        with sdpa_kernel(backends), autocast(device, dtype):
            outs = model(x)
            loss = sum(o.float().mean() for o in outs)
        with sdpa_kernel(backends):
            loss.backward()
        sync(device)
    except RuntimeError as err:
        return str(err).strip().splitlines()[0]
    return None


def check_sdpa(report, args, device):
    try:
        from torch.nn.attention import SDPBackend  # torch >= 2.3
    except ImportError:
        return report.add('sdpa', 'sdpa_kernel', SKIP, 'torch.nn.attention needs torch >= 2.3')

    from hiera_mm.models.hiera import build_hiera
    fused = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    dtypes, _ = amp_dtypes(device)
    size = 64 if args.quick else 1024
    archs = {'hiera': 'tiny', 'sam2': 'sam2_tiny'} if not args.quick else \
        {'hiera': SMALL, 'sam2': QUICK_FAMILIES['sam2']}
    where = ('CPU: torch\'s fused flash kernel' if device.type == 'cpu' else '')
    for family, arch in archs.items():
        for attention in ('exact', 'windowed') if family == 'hiera' else ('exact',):
            model = build_hiera(arch, attention=attention)  # a dict keeps its global_blocks
            model = model.to(device).train()
            x = torch.randn(1, 3, size, size, device=device)
            for name in dtypes + ['fp32']:
                dtype = DTYPES.get(name, torch.float32)
                err = sdpa_check(device, model, x, dtype, fused)
                kernel = '-'
                if err is None:  # which of the two fused kernels ran
                    flash = sdpa_check(device, model, x, dtype, [SDPBackend.FLASH_ATTENTION])
                    kernel = 'flash' if flash is None else 'memory-efficient'
                report.add('sdpa', f'{family} {attention} {name} {size}^2 fwd+bwd',
                           OK if err is None else FAIL,
                           err or ('; '.join(x for x in (where, f'kernel {kernel}') if x)))
            del model


# ----------------------------------------------------------------------------------------------
class Row:
    """One speed row: a model and how to call it."""

    def __init__(self, name, build, attention='', note=''):
        self.name, self.build, self.attention, self.note = name, build, attention, note


def contenders(args, size):
    """Our trunk and the others, for one input size: [(Row | skip reason)]."""
    from hiera_mm.models.hiera import build_hiera
    arch = 'tiny'
    rows = []

    def ours(attention, a=arch):
        def build():
            model = build_hiera(a, attention=attention)
            model.init_weights()
            return model
        return build

    rows.append(Row('hiera_mm Hiera-T', ours('exact'), 'exact'))
    rows.append(Row('hiera_mm Hiera-T', ours('windowed'), 'windowed'))
    rows.append(Row('hiera_mm SAM2-T', ours('exact', 'sam2_tiny'), 'sam2 windows'))
    s = ARCH_SETTINGS[arch]
    if has_module('transformers'):
        def hf():
            from transformers import HieraConfig, HieraModel
            model = HieraModel(HieraConfig(embed_dim=s['embed_dim'], depths=list(s['depths']),
                                           num_heads=list(s['num_heads'])), add_pooling_layer=False)
            return _Call(model, lambda m, x: [m(pixel_values=x, interpolate_pos_encoding=True)
                                              .last_hidden_state])
        rows.append(Row('transformers HieraModel', hf, 'exact'))
    else:
        rows.append(('transformers HieraModel', 'transformers is not installed'))
    if has_module('timm'):
        def timm_hiera():
            import timm
            model = timm.create_model('hiera_tiny_224', pretrained=False, img_size=(size, size),
                                      num_classes=0)
            return _Call(model, lambda m, x: [m.forward_features(x)])
        rows.append(Row('timm hiera_tiny_224', timm_hiera, 'exact', f'built for {size}^2'))
    else:
        rows.append(('timm hiera_tiny_224', 'timm is not installed'))
    if has_module('mmdet'):
        def swin():
            from mmdet.models.backbones import SwinTransformer
            model = SwinTransformer(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
                                    window_size=7, out_indices=(0, 1, 2, 3))
            return _Call(model, lambda m, x: list(m(x)))
        rows.append(Row('mmdet Swin-T', swin, 'windows 7'))
    else:
        rows.append(('mmdet Swin-T', 'mmdet is not installed'))
    if has_module('sam2'):
        def sam2_hiera():
            from sam2.modeling.backbones.hieradet import Hiera
            t = ARCH_SETTINGS['sam2_tiny']
            model = Hiera(embed_dim=t['embed_dim'], num_heads=t['num_heads'][0],
                          stages=tuple(t['depths']), global_att_blocks=tuple(t['global_blocks']),
                          window_pos_embed_bkg_spatial_size=tuple(t['pos_embed_size']),
                          window_spec=tuple(t['window_sizes']))
            return _Call(model, lambda m, x: list(m(x)))
        rows.append(Row('SAM2 hieradet Hiera (sam2_tiny)', sam2_hiera, 'sam2 windows'))
    else:
        rows.append(('SAM2 hieradet Hiera (sam2_tiny)', 'sam2 is not installed'))
    return rows


class _Call(torch.nn.Module):
    """A model with the call that gives its feature maps."""

    def __init__(self, model, call):
        super().__init__()
        self.model, self.call = model, call

    def forward(self, x):
        return self.call(self.model, x)


def time_call(device, fn, runs, warmup):
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def speed_row(report, args, device, row, size, batch, mode, compiled):
    dtype = torch.bfloat16 if 'bf16' in amp_dtypes(device)[0] else None
    label = (f"{row.name} {row.attention} {size}^2 b{batch} {mode} "
             f"{'compile' if compiled else 'eager'}").replace('  ', ' ')
    model = None
    try:
        torch.manual_seed(0)
        model = row.build().to(device)
        model.train(mode == 'fwd+bwd')
        fn_model = torch.compile(model, dynamic=False) if compiled else model
        x = torch.randn(batch, 3, size, size, device=device)

        def step():
            if mode == 'fwd':
                with torch.inference_mode(), autocast(device, dtype):
                    fn_model(x)
            else:
                model.zero_grad(set_to_none=True)
                with autocast(device, dtype):
                    loss = sum(o.float().mean() for o in fn_model(x))
                loss.backward()

        t0 = time.perf_counter()
        step()  # first call: compiles where compiled
        sync(device)
        first = time.perf_counter() - t0
        if device.type == 'cuda':
            model.zero_grad(set_to_none=True)  # as every step starts: the base holds no gradients
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        runs, warmup = (1, 0) if args.quick else (5, 1)
        seconds = time_call(device, step, runs, warmup)
        peak = ((torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
                if device.type == 'cuda' else None)
        values = dict(ms=seconds * 1e3, images_per_s=batch / seconds)
        if peak is not None:
            values['peak_mib'] = peak
        if compiled:
            values['compile_s'] = first
        report.add('speed', label, OK, row.note + ('' if dtype else ' (fp32: no bf16 here)'),
                   **values)
    except torch.cuda.OutOfMemoryError:
        report.add('speed', label, ERROR, 'out of memory')
    except Exception as err:  # noqa: BLE001 - a contender that fails is a row, not the end
        report.add('speed', label, ERROR, f'{type(err).__name__}: {str(err).splitlines()[0][:200]}')
    finally:
        model = fn_model = None  # the memory goes back before the next row
        if device.type == 'cuda':
            torch.cuda.empty_cache()


def check_speed(report, args, device):
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True
    for size in SIZES[args.quick]:
        rows = contenders(args, size)
        for row in rows:
            if isinstance(row, tuple):
                report.add('speed', f'{row[0]} {size}^2', SKIP, row[1])
                continue
            for batch, mode in ((1, 'fwd'), (TRAIN_BATCH[size], 'fwd+bwd')):
                speed_row(report, args, device, row, size, batch, mode, compiled=False)
                ours = row.name.startswith('hiera_mm Hiera-T')
                if args.quick and (row.attention, mode) != ('exact', 'fwd'):
                    ours = False  # --quick compiles one graph: the code path, not the numbers
                if ours and size in COMPILE_SIZES[args.quick] and not args.no_compile:
                    if report.elapsed() > args.budget_s:
                        report.add('speed', f'{row.name} {row.attention} {size}^2 compile', SKIP,
                                   f'time budget ({args.budget_s} s) spent')
                        continue
                    speed_row(report, args, device, row, size, batch, mode, compiled=True)


# ----------------------------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def one_process_group_env(device):
    """Environment of rank 0 of a 1-process group (torch.distributed's env:// variables)."""
    env = dict(os.environ, RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', LOCAL_WORLD_SIZE='1',
               MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()),
               PYTHONPATH=os.pathsep.join(p for p in (REPO_ROOT, os.environ.get('PYTHONPATH'))
                                          if p))
    if device.type == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    return env


def run_tool(cmd, env, timeout, cwd):
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as err:
        out = err.stdout or ''
        out = out.decode(errors='replace') if isinstance(out, bytes) else out
        return None, f'timed out after {timeout} s', time.perf_counter() - t0, out[-4000:]
    return proc.returncode, proc.stderr[-4000:], time.perf_counter() - t0, proc.stdout[-4000:]


def toy_data(work):
    """The toy COCO and segmentation data (small), made once per run."""
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools', 'dev'))
    try:
        from make_toy_coco import make_toy_coco
        from make_toy_seg import make_toy_seg
    finally:
        sys.path.pop(0)
    coco = make_toy_coco(osp.join(work, 'toy_coco'), num_train=4, num_val=2, size=(128, 128))
    seg = make_toy_seg(osp.join(work, 'toy_seg'), num_train=4, num_val=2, size=(128, 128))
    return coco, seg


def last_scalar(work_dir, key):
    """The last ``key`` in mmengine's vis_data/scalars.json under ``work_dir``."""
    value = None
    for root, _, files in os.walk(work_dir):
        if 'scalars.json' in files:
            with open(osp.join(root, 'scalars.json')) as f:
                for line in f:
                    record = json.loads(line)
                    if key in record:
                        value = record[key]
    return value


def refusal(text):
    """The tool's own sentence where it refused AMP on this machine, else None."""
    match = re.search(r'RuntimeError: (AMP training .*?needs a GPU[^\n]*)', text)
    return match.group(1)[:600] if match else None


def train_openmmlab(report, args, device, work, framework, config, data_root, dtype_name):
    label = f"{framework} {'Mask R-CNN' if framework == 'mmdet' else 'UperNet'} Hiera-T " \
            f'AMP {dtype_name} 1 iter'
    work_dir = osp.join(work, f'{framework}_{dtype_name}')
    options = [f'train_dataloader.dataset.data_root={data_root}',
               'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
               'train_dataloader.batch_size=2', 'train_cfg.max_iters=1',
               'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
               'test_cfg=None', 'test_dataloader=None', 'test_evaluator=None',
               'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=100000',
               'default_hooks.checkpoint.save_last=False', 'log_processor.window_size=1',
               # random init: the GPU machine may have no hub access, and AMP is what is checked
               'model.backbone.init_cfg=None']
    cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), config, '--amp',
           '--amp-dtype', {'bf16': 'bfloat16', 'fp16': 'float16'}[dtype_name],
           '--launcher', 'pytorch', '--work-dir', work_dir, '--cfg-options', *options]
    code, err, seconds, out = run_tool(cmd, one_process_group_env(device), args.train_timeout_s,
                                       REPO_ROOT)
    text = f'{out}\n{err}'
    if device.type == 'cpu':
        why = refusal(text)
        if code != 0 and why:
            return report.add('train', label, NEEDS_CUDA, f'tools/train.py refused: {why}',
                              seconds=seconds)
        return report.add('train', label, FAIL, 'expected the refusal of AMP without a GPU; '
                          f'exit {code}: {err[-300:]}', seconds=seconds)
    loss = last_scalar(work_dir, 'loss')
    ok = code == 0 and loss is not None and loss == loss and abs(loss) != float('inf')
    return report.add('train', label, OK if ok else FAIL,
                      'AmpOptimWrapper, NCCL, 1 process' if ok else f'exit {code}: {err[-400:]}',
                      loss=loss if loss is not None else 'none', seconds=seconds)


D2_DRIVER = r'''
import json, os, sys
import torch
import torch.distributed as dist
from detectron2.utils import comm
backend = sys.argv[1]
dist.init_process_group(backend, init_method='env://', rank=0, world_size=1)
if hasattr(comm, 'create_local_process_group'):
    comm.create_local_process_group(1)
import importlib.util
spec = importlib.util.spec_from_file_location('train_net', sys.argv[2])
train_net = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_net)
build = train_net.build_trainer
def recording_build(cfg, *a, **k):
    trainer = build(cfg, *a, **k)
    print('GPU_CHECK_TRAINER ' + json.dumps(dict(type=type(trainer).__name__,
          precision=str(getattr(trainer, 'precision', None)),
          world_size=dist.get_world_size(), backend=dist.get_backend())), flush=True)
    return trainer
train_net.build_trainer = recording_build
train_net.main(train_net.get_parser().parse_args(sys.argv[3:]))
dist.destroy_process_group()
'''


def train_detectron2(report, args, device, work, coco, dtype_name):
    label = f'detectron2 Mask R-CNN Hiera-T AMPTrainer {dtype_name} 1 iter'
    if device.type == 'cpu':
        return report.add('train', label, NEEDS_CUDA,
                          "Detectron2's AMPTrainer asserts CUDA in every step; train_net.py "
                          'trains fp32 with SimpleTrainer on the CPU (with a warning)')
    out = osp.join(work, f'd2_{dtype_name}')
    driver = osp.join(work, 'd2_driver.py')
    with open(driver, 'w') as f:
        f.write(D2_DRIVER)
    precision = {'bf16': 'bfloat16', 'fp16': 'float16'}[dtype_name]
    cmd = [sys.executable, driver, 'nccl',
           osp.join(REPO_ROOT, 'tools', 'detectron2', 'train_net.py'),
           '--config-file', osp.join(REPO_ROOT, 'configs', 'detectron2', 'toy',
                                     'mask_rcnn_hiera_t_toy.py'),
           '--register', 'toy_coco_train', coco['train_ann'], coco['train_img_dir'],
           '--register', 'toy_coco_val', coco['val_ann'], coco['val_img_dir'],
           'train.device=cuda', 'train.amp.enabled=True', f'train.amp.precision={precision}',
           'train.ddp.fp16_compression=True', f'train.output_dir={out}', 'train.max_iter=1',
           'train.eval_period=0', 'train.checkpointer.period=100000', 'train.log_period=1',
           'dataloader.train.total_batch_size=2', 'dataloader.train.num_workers=0']
    code, err, seconds, stdout = run_tool(cmd, one_process_group_env(device),
                                          args.train_timeout_s, REPO_ROOT)
    trainer = re.search(r'GPU_CHECK_TRAINER (\{.*\})', stdout + err)
    trainer = json.loads(trainer.group(1)) if trainer else {}
    loss = None
    metrics = osp.join(out, 'metrics.json')
    if osp.isfile(metrics):
        with open(metrics) as f:
            losses = [json.loads(line).get('total_loss') for line in f]
        loss = next((v for v in reversed(losses) if v is not None), None)
    ok = (code == 0 and trainer.get('type') == 'AMPTrainer' and loss is not None
          and loss == loss and abs(loss) != float('inf'))
    note = (f"{trainer.get('type')} precision {trainer.get('precision')}, "
            f"{trainer.get('backend')} group of {trainer.get('world_size')}")
    return report.add('train', label, OK if ok else FAIL,
                      note if ok else f'{note}; exit {code}: {err[-400:]}',
                      loss=loss if loss is not None else 'none', seconds=seconds)


def check_train(report, args, device):
    if not osp.isfile(osp.join(REPO_ROOT, 'tools', 'train.py')):  # hiera_mm_tools from a wheel
        report.add('train', 'AMP training iterations', SKIP,
                   f'they run tools/train.py and configs/toy of a checkout, and {REPO_ROOT} is '
                   'none: run tools/analysis_tools/gpu_check.py from a hiera_mm clone')
        return
    missing = [m for m in ('mmdet', 'mmseg', 'detectron2') if not has_module(m)]
    with tempfile.TemporaryDirectory(prefix='gpu_check_train_') as work:
        coco, seg = toy_data(work)
        dtypes = amp_dtypes(device)[0] if device.type == 'cuda' else ['bf16']
        for name in dtypes:
            for framework, config, root in (
                    ('mmdet', osp.join(REPO_ROOT, *MMDET_TOY), coco['root']),
                    ('mmseg', osp.join(REPO_ROOT, *MMSEG_TOY), seg['root'])):
                if framework in missing:
                    report.add('train', f'{framework} AMP {name}', SKIP,
                               f'{framework} not installed')
                    continue
                train_openmmlab(report, args, device, work, framework, config, root, name)
            if 'detectron2' in missing:
                report.add('train', f'detectron2 AMP {name}', SKIP, 'detectron2 not installed')
            else:
                train_detectron2(report, args, device, work, coco, name)


# ----------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='GPU check: parity, autocast bounds, fused attention, speed and memory, AMP '
                    'training iterations. Writes gpu_check.json and gpu_check.md.')
    parser.add_argument('--device', default='cuda', help="'cuda' (default), 'cuda:N' or 'cpu'")
    parser.add_argument('--quick', action='store_true',
                        help='small sizes and models (minutes on a CPU): the code path only')
    parser.add_argument('--out', default=osp.join('work_dirs', 'gpu_check'),
                        help='folder for gpu_check.json and gpu_check.md')
    parser.add_argument('--sections', nargs='+', choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument('--no-compile', action='store_true', help='no torch.compile rows')
    parser.add_argument('--budget-s', type=float, default=360.0,
                        help='no torch.compile row starts after this many seconds of the run (each '
                             'skipped one is noted): keeps the whole check within 8 minutes')
    parser.add_argument('--train-timeout-s', type=int, default=240,
                        help='limit of each training subprocess')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        sys.exit('gpu_check: --device cuda but CUDA is not available here; on a machine without '
                 'a GPU run `--device cpu --quick` (the same code at small sizes)')
    if device.type not in ('cuda', 'cpu'):
        sys.exit(f'gpu_check: --device {args.device}: use cuda[:N] or cpu')
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    report = Report(args)
    env = environment(args, device)
    report.add('env', 'device', OK, env['device_name'])
    checks = dict(parity=check_parity, autocast=check_autocast, sdpa=check_sdpa,
                  speed=check_speed, train=check_train)
    for section in SECTIONS:  # in this order, whatever the order given
        if section == 'env' or section not in args.sections:
            continue
        try:
            checks[section](report, args, device)
        except Exception as err:  # noqa: BLE001 - a section that breaks is reported, others run
            report.add(section, 'section', FAIL, f'{type(err).__name__}: {err}'
                       f"\n{''.join(traceback.format_exc(limit=3))[-600:]}")
    data = report.write(args.out, env)
    print(f"\ngpu_check: {len(report.rows)} rows, {data['failed']} failed, "
          f"{data['seconds']} s -> {osp.join(args.out, 'gpu_check.md')}")
    return 1 if report.failed else 0
