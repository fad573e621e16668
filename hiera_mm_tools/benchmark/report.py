"""The results as markdown tables (stdout) and as JSON."""
import json
import math
import os
import os.path as osp

from .contenders import EXTRAS
from .timing import ratio_references


def fmt(v, digits=1):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return '-'
    return f'{v:.{digits}f}'


def table(head, rows):
    """A markdown table: the header, its rule, and one line per row (lists of cells)."""
    def line(cells):
        return '|' + ''.join(f' {c} |' if str(c) else ' |' for c in cells)
    return '\n'.join([line(head), '|' + '---|' * len(head)] + [line(row) for row in rows])


def timing_cells(name, row, mode, refs) -> list:
    r = row[mode]
    return ([name, fmt(row['params_M']), fmt(r['median_ms']), fmt(r['min_ms']),
             fmt(r.get('cpu_median_ms')), fmt(r['images_per_s'], 3)]
            + [fmt(r.get(f'ratio_vs_{ref}'), 2) for ref in refs])


def timing_tables(results: dict) -> list:
    cfg, rows = results['config'], results['contenders']
    out = []
    if rows:
        out.append("'t / X': median time over X's (< 1: faster). 'cpu ms': process CPU time of "
                   'the same calls, all threads (well below threads x wall time: the process '
                   'waited for cores that other work held).\n')
    refs = ratio_references(cfg['baseline'], rows)
    head = ['contender', 'params (M)', 'median ms', 'min ms', 'cpu ms', 'img/s']
    head += [f't / {r}' for r in refs]
    for mode, title in (('fwd', 'forward'), ('fwdbwd', 'forward + backward')):
        cells = [timing_cells(name, row, mode, refs) for name, row in rows.items() if mode in row]
        if cells:
            out.append(f'### {title}\n\n{table(head, cells)}\n')
    return out


def memory_table(mem: dict, device: str) -> str:
    unit = 'CUDA max_memory_allocated' if device == 'cuda' else 'peak RSS (VmHWM)'
    text = f'### Peak memory, one call per fresh process ({unit}, MiB)\n\n'
    if 'torch_only_process' in mem:
        text += (f"Baseline: a process that only imports torch peaks at "
                 f"{fmt(mem['torch_only_process'].get('peak_mib'))} MiB; 'after imports' is "
                 'the same process before building its model.\n\n')
    cells = []
    for name, modes in mem.get('contenders', {}).items():
        for mode, rep in modes.items():
            if 'error' in rep:
                cells.append([name, mode, f'error: {rep["error"][:80]}', '', '', ''])
                continue
            cells.append([name, mode, fmt(rep['peak_mib']),
                          fmt(rep.get('after_import', {}).get('peak_rss_mib')),
                          fmt(rep.get('peak_above_import_mib')),
                          fmt(rep.get('peak_above_build_mib'))])
    head = ['contender', 'mode', 'peak', 'after imports', 'peak - after imports',
            'peak - after build']
    return text + table(head, cells) + '\n'


def compile_table(comp: dict, size) -> str:
    cells = [[f"{s['size'][0]}x{s['size'][1]}", s['graphs_compiled'], fmt(s['first_call_s']),
              f"{s['max_abs_diff']:.2e}"] for s in comp['sizes']]
    head = ['size', 'graphs compiled', 'first call s', 'max abs diff']
    return (f"### torch.compile: {comp['model']}, {comp['settings']}\n\n"
            + table(head, cells) + '\n'
            + f"\nRecompiles over {len(comp['sizes'])} sizes: {comp['recompiles']}; max |compiled"
            f" - eager| = {comp['max_abs_diff']:.2e}. Forward at {size[0]}x{size[1]}: eager "
            f"{fmt(comp['eager']['median_ms'])} ms, compiled "
            f"{fmt(comp['compiled']['median_ms'])} ms (x{comp['compiled_over_eager']:.2f}, "
            f"{'slower' if comp['compiled_is_slower'] else 'faster'}).\n")


def checkpointing_table(cp: dict, cfg: dict) -> str:
    cells = []
    for key in ('with_cp=False', 'with_cp=True'):
        rep = cp[key]
        if 'error' in rep:
            cells.append([key, f'error: {rep["error"][:80]}', '', ''])
        else:
            cells.append([key, fmt(rep['peak_mib']), fmt(rep['peak_above_build_mib']),
                          fmt(rep['single_call_ms'])])
    return (f"### Training peak memory with and without activation checkpointing "
            f"(Hiera-{cp['arch']}, {cfg['batch']} x 3 x {cfg['size'][0]} x {cfg['size'][1]}, "
            'fwd+bwd, fresh processes, MiB)\n\n'
            + table(['with_cp', 'peak', 'peak - after build', 'one fwd+bwd ms'], cells) + '\n'
            + f"\nRatio with_cp / without: peak {fmt(cp.get('peak_ratio'), 3)}, above build "
            f"{fmt(cp.get('above_build_ratio'), 3)}.\n")


def print_tables(results: dict):
    cfg = results['config']
    print(f"\n## Benchmark: {cfg['batch']} x 3 x {cfg['size'][0]} x {cfg['size'][1]}, "
          f"{cfg['dtype']}, {cfg['device']} ({results['machine']['device_name']}), "
          f"{cfg['threads']} threads, Hiera arch {cfg['arch']}, median of {cfg['runs']} "
          f"alternating rounds after {cfg['warmup']} warmup\n")
    sections = timing_tables(results)
    if results.get('memory'):
        sections.append(memory_table(results['memory'], cfg['device']))
    for key, extra in EXTRAS.items():
        if results.get(key):
            sections.append(extra.table(results[key], cfg))
    if results.get('compile'):
        sections.append(compile_table(results['compile'], cfg['size']))
    if results.get('with_cp_memory'):
        sections.append(checkpointing_table(results['with_cp_memory'], cfg))
    for text in sections:
        print(text)
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


def write_json(results: dict, path: str):
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(finite_or_none(results), f, indent=2)
