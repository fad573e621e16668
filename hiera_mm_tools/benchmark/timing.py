"""Timing: one call of a contender (``Timer``) and alternating rounds over several of them."""
from __future__ import annotations

import contextlib
import math
import statistics
import sys
import time
from typing import NamedTuple

from .contenders import build_contender

DTYPES = {'fp32': 'float32', 'bf16': 'bfloat16', 'fp16': 'float16'}
# The time ratios refer to the baseline and to this contender as well.
SECOND_REFERENCE = 'swin-t'


class Call(NamedTuple):
    seconds: float
    cpu_seconds: float  # process CPU time, all threads
    cuda_peak_bytes: int | None  # CUDA peak above the memory in use before the call


class Timer:
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

    def measure(self, contender, mode, x=None) -> Call:
        torch = self.torch
        x = self.x if x is None else x
        if mode == 'fwdbwd':
            contender.module.zero_grad(set_to_none=True)
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
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
        peak = torch.cuda.max_memory_allocated() - before if self.cuda else None
        del outs
        return Call(seconds, cpu_seconds, peak)


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


def ratio_references(baseline: str, rows: dict) -> list:
    """The contenders the time ratios refer to, among those that ran."""
    return [r for r in dict.fromkeys((baseline, SECOND_REFERENCE)) if r in rows]


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


def build_all(names, args, device) -> dict:
    contenders = {}
    for name in names:
        t0 = time.perf_counter()
        contenders[name] = build_contender(name, args)
        contenders[name].module.to(device)
        print(f'  built {name} ({contenders[name].params_m:.1f} M params, '
              f'{time.perf_counter() - t0:.1f} s)', file=sys.stderr, flush=True)
    return contenders


def time_mode(contenders: dict, mode: str, timer: Timer, args, rows: dict) -> None:
    """Alternating rounds of every contender in ``mode``; summaries and ratios into ``rows``."""
    for c in contenders.values():
        timer.prepare(c, mode)
    cuda_peaks, cpu = {}, {name: [] for name in contenders}

    def seconds(name):
        call = timer.measure(contenders[name], mode)
        cpu[name].append(call.cpu_seconds)
        if call.cuda_peak_bytes is not None:
            cuda_peaks[name] = max(cuda_peaks.get(name, 0), call.cuda_peak_bytes)
        return call.seconds

    times = alternate(list(contenders), seconds, args.runs, args.warmup, mode)
    for name in contenders:
        rows[name][mode] = summarize(times[name], args.batch, cpu[name][args.warmup:])
        if name in cuda_peaks:
            rows[name][mode]['cuda_peak_above_resident_mib'] = cuda_peaks[name] / 2 ** 20
    add_ratios(rows, mode, ratio_references(args.baseline, rows))


def time_contenders(names, modes, timer: Timer, args) -> dict:
    """Build every contender, then time them in alternating rounds per mode -> rows by name."""
    contenders = build_all(names, args, timer.device)
    rows = {name: {'impl': c.impl, 'params_M': c.params_m} for name, c in contenders.items()}
    for mode in modes:
        time_mode(contenders, mode, timer, args, rows)
    return rows
