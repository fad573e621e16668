"""Peak memory of one call of a contender, each measured in a fresh process.

The parent runs ``python -m hiera_mm_tools.benchmark.memory SPEC`` (SPEC: JSON of the settings below);
the child imports what the contender needs, builds it, makes one call and prints its report on a
tagged stdout line. On CPU the child reports its peak resident set size: ``VmHWM`` of
/proc/self/status, and ``getrusage(RUSAGE_SELF).ru_maxrss``. Both include the Python/torch/library
baseline, so a process that only imports torch is measured too, and each process also reports its
peak after its imports, before building anything. (On Linux a child started by vfork/posix_spawn,
as ``subprocess`` does, inherits the parent's ``ru_maxrss`` high-water mark through exec, so
``ru_maxrss`` can overstate a child's peak; ``VmHWM`` is the process's own and is the number
reported.) On CUDA the peak is ``torch.cuda.max_memory_allocated``.
"""
import argparse
import json
import math
import os
import os.path as osp
import subprocess
import sys

from .contenders import PLUGINS, build_contender, import_for, load_plugins
from .environment import memory_status
from .timing import Timer

# What a child needs of the parent's arguments.
CHILD_SETTINGS = ('arch', 'size', 'batch', 'dtype', 'device', 'threads', 'mm_backbone')
REPORT_TAG = 'BENCH_SINGLE_JSON '
TORCH_ONLY = '__torch_only__'
# The folder that holds the hiera_mm_tools package, for the child to import this same copy.
PACKAGE_PARENT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def measure_in_child(name, mode, args, with_cp=False, arch=None) -> dict:
    """One fresh process's report for ``name`` in ``mode`` (or ``{'error': ...}``)."""
    spec = {key: getattr(args, key) for key in CHILD_SETTINGS}
    spec.update(name=name, mode=mode, with_cp=with_cp, arch=arch or args.arch,
                plugins=list(PLUGINS))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (PACKAGE_PARENT, os.environ.get('PYTHONPATH')) if p))
    if args.threads:
        env['OMP_NUM_THREADS'] = str(args.threads)
    print(f'  [isolate] {name} {mode}{" with_cp" if with_cp else ""} ...', file=sys.stderr,
          flush=True)
    proc = subprocess.run([sys.executable, '-m', __name__, json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(REPORT_TAG):
            return add_peaks(json.loads(line[len(REPORT_TAG):]), args.device)
    tail = (proc.stderr or proc.stdout or '').strip().splitlines()[-5:]
    return {'error': f'exit code {proc.returncode}: ' + ' | '.join(tail)}


def add_peaks(report: dict, device: str) -> dict:
    """The peak (MiB) and how far it rose above the process after its imports / its build."""
    cuda = device == 'cuda'
    report['peak_mib'] = (report['cuda_max_allocated_mib'] if cuda
                          else report['end']['peak_rss_mib'])
    if 'after_build' in report:
        built = (report['cuda_allocated_after_build_mib'] if cuda
                 else report['after_build']['peak_rss_mib'])
        report['peak_above_build_mib'] = report['peak_mib'] - built
        if not cuda:
            report['peak_above_import_mib'] = (
                report['peak_mib'] - report['after_import']['peak_rss_mib'])
    return report


def isolated_memory(names, modes, args) -> dict:
    """Every contender in every mode, and (on CPU) a process that only imports torch."""
    mem = {'contenders': {}}
    if args.device == 'cpu':
        baseline = measure_in_child(TORCH_ONLY, 'fwd', args)
        baseline['peak_mib'] = baseline.get('end', {}).get('peak_rss_mib')
        mem['torch_only_process'] = baseline
    for name in names:
        mem['contenders'][name] = {mode: measure_in_child(name, mode, args) for mode in modes}
    return mem


def checkpointing_memory(args) -> dict:
    """Training (fwd+bwd) peak of the Hiera trunk with and without ``with_cp``."""
    cp = {'arch': args.cp_arch, 'contender': 'hiera_mm-exact', 'mode': 'fwdbwd'}
    for flag in (False, True):
        cp[f'with_cp={flag}'] = measure_in_child('hiera_mm-exact', 'fwdbwd', args, with_cp=flag,
                                                 arch=args.cp_arch)
    off, on = cp['with_cp=False'], cp['with_cp=True']
    if 'error' not in off and 'error' not in on:
        cp['peak_ratio'] = on['peak_mib'] / off['peak_mib']
        cp['above_build_ratio'] = (on['peak_above_build_mib'] / off['peak_above_build_mib']
                                   if off['peak_above_build_mib'] > 0 else math.nan)
    return cp


def one_call_report(args) -> dict:
    """In the child: memory after the imports, after the build and after one call."""
    import torch
    report = {}
    import_for(args.name, args)
    report['after_import'] = memory_status()
    contender = build_contender(args.name, args, with_cp=args.with_cp)
    timer = Timer(args)
    contender.module.to(timer.device)
    report['after_build'] = memory_status()
    if timer.cuda:
        report['cuda_allocated_after_build_mib'] = torch.cuda.memory_allocated() / 2 ** 20
    timer.prepare(contender, args.mode)
    report['single_call_ms'] = timer.measure(contender, args.mode).seconds * 1e3
    report['end'] = memory_status()
    if timer.cuda:
        report['cuda_max_allocated_mib'] = torch.cuda.max_memory_allocated() / 2 ** 20
    report['with_cp'] = args.with_cp
    report['arch'] = args.arch
    return report


def child_main(spec: dict) -> None:
    import torch
    load_plugins(spec.pop('plugins', ()))
    args = argparse.Namespace(**spec)
    args.size = tuple(args.size)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {'name': args.name, 'mode': args.mode}
    if args.name == TORCH_ONLY:
        report['after_import'] = report['end'] = memory_status()
    else:
        report.update(one_call_report(args))
    print(REPORT_TAG + json.dumps(report), flush=True)


if __name__ == '__main__':
    child_main(json.loads(sys.argv[1]))
