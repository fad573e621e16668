#!/usr/bin/env python
"""Speed and memory of the Hiera backbone against other implementations and backbones.

    python tools/analysis_tools/benchmark_backbone.py [--contenders NAME ...] [--arch tiny]
        [--size H W] [--batch 1] [--dtype fp32|bf16|fp16] [--device cpu|cuda] [--threads N]
        [--runs 5] [--warmup 2] [--mode fwd|fwdbwd|both] [--baseline hf-hiera] [--isolate]
        [--train-step] [--compile] [--with-cp-memory] [--no-timing] [--quick] [--out results.json]

(Not mmdet's analysis_tools/benchmark.py, which times a whole detector from CONFIG CHECKPOINT.)

Contenders (``--contenders``, default: every one that can be built here):

    hiera_mm-exact              hiera_mm's Hiera, attention='exact' (the pretrained computation)
    hiera_mm-windowed           attention='windowed', default global_blocks (last stage-3 block)
    hiera_mm-windowed-noglobal  attention='windowed', global_blocks=()
    hf-hiera                    transformers' HieraModel, interpolate_pos_encoding=True
    swin-t                      mmdet's SwinTransformer, Swin-T settings (timm's without mmdet)
    r50                         mmdet's ResNet-50 (timm's without mmdet)
    onnxruntime-exact           the hiera_mm-exact trunk exported to ONNX (opset 17, dynamic
    onnxruntime-windowed        size) and run by onnxruntime; --mode fwd, CPU, fp32
    d2-mask-rcnn-eager          the whole Detectron2 Mask R-CNN of
                                configs/detectron2/mask_rcnn_hiera_t_3x.py (random weights), eager
    d2-mask-rcnn-onnxruntime    the same model exported as tools/detectron2/export_model.py
                                exports it (TracingAdapter, opset 17, dynamic size), onnxruntime

The d2 rows run only when named (--contenders), forward, batch 1, CPU, fp32; their score
threshold is 0, so every image gives the mask head its full 100 detections.

A hiera_mm row may name another copy of hiera.py, ``hiera_mm-exact@/tmp/hiera.py``, to time a
change against the current file in the same alternating rounds.

The hiera_mm rows time the bare trunk of ``hiera_mm/models/hiera.py``, which runs where only
torch is installed (``--mm-backbone`` times mmdet's ``HieraBackbone`` instead: padding, output
norms, NCHW). ``--arch`` picks the Hiera size of the hiera_mm and hf rows.

Every round times each contender once, in an order rotated per round; ``--warmup`` rounds are
discarded and the median (and min) of ``--runs`` rounds is reported, with the time ratio to
``--baseline`` and to swin-t (< 1 = faster). With ``--isolate`` each contender (and mode) also
runs once in a fresh process, for its peak memory (CPU: peak RSS, with a process that only
imports torch as the baseline; CUDA: max_memory_allocated). The method in full is in
``hiera_mm_tools/benchmark/__init__.py``; the rows that need mmdet or Detectron2 come from
its plug-ins (``openmmlab``, ``detectron2``).

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
import argparse
import os
import sys

from hiera_mm_tools.benchmark import contenders
from hiera_mm_tools.benchmark.compile_check import compile_benchmark
from hiera_mm_tools.benchmark.environment import load_average, machine_info
from hiera_mm_tools.benchmark.memory import checkpointing_memory, isolated_memory
from hiera_mm_tools.benchmark.report import print_tables, write_json
from hiera_mm_tools.benchmark.timing import DTYPES, Timer, time_contenders

# The framework rows and extras (each imports its framework only when a row is built).
PLUGINS = ('hiera_mm_tools.benchmark.openmmlab', 'hiera_mm_tools.benchmark.detectron2')
contenders.load_plugins(PLUGINS)

QUICK = dict(size=(128, 128), runs=1, warmup=0, arch='tiny', cp_arch='tiny')
DEFAULTS = dict(size=(800, 1344), runs=5, warmup=2, arch='tiny', cp_arch='base')


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--contenders', nargs='+', default=None,
                   help=f'names (space or comma separated) from: {", ".join(contenders.all_names())}; '
                        'default: all but the d2 rows that can be built here. A hiera_mm row may '
                        'name another '
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
                   help='peak memory of each contender in a fresh process')
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
    return p


def parse_args(argv=None):
    p = build_parser()
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


def setup_torch(args):
    if args.threads:
        os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'cuda' and not torch.cuda.is_available():
        sys.exit('--device cuda: no CUDA device is available')


def main(argv=None):
    args = parse_args(argv)
    setup_torch(args)
    names, notes = contenders.select_contenders(args)
    results = {'command': [sys.executable] + sys.argv, 'machine': machine_info(args.device),
               'config': dict(vars(args)), 'contenders': {}, 'notes': notes}
    modes = ['fwd', 'fwdbwd'] if args.mode == 'both' else [args.mode]
    # Fresh processes first, while this process is still small.
    if args.isolate and not args.no_timing:
        results['memory'] = isolated_memory(names, modes, args)
    if args.with_cp_memory:
        results['with_cp_memory'] = checkpointing_memory(args)
    timer = Timer(args)
    if not args.no_timing and names:
        results['contenders'] = time_contenders(names, modes, timer, args)
        if args.baseline not in results['contenders']:
            notes.append(f'baseline {args.baseline} was not run: no ratios to it')
    for key, extra in contenders.EXTRAS.items():
        if getattr(args, key, False):
            why = extra.why_not()
            if why is None:
                results[key] = extra.run(args)
            else:
                notes.append(f'--{key.replace("_", "-")} skipped: {why}')
    if args.compile:
        results['compile'] = compile_benchmark(args, timer)
    average = load_average()
    if average is not None:
        results['machine']['load_average_end'] = average
    print_tables(results)
    if args.out:
        write_json(results, args.out)
        print(f'\nwrote {args.out}')
    return results


if __name__ == '__main__':
    main()
