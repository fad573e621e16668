"""``torch.compile`` of the hiera_mm-exact trunk: outputs against eager at three input sizes, the
graphs compiled per size (recompiles), and compiled against eager forward time."""
import sys
import time

from .contenders import Contender, build_hiera_trunk
from .timing import alternate, summarize

DYNAMIC = {'false': False, 'true': True, 'auto': None}


def compile_sizes(args):
    H, W = args.size
    return [(H, W), (max(64, H - 32), W), (H, max(64, W - 32))]


def compile_counting_graphs(model, args):
    """(compiled model, dict whose 'n' counts the graphs the backend has compiled)."""
    import torch
    import torch._dynamo
    from torch._dynamo.backends.registry import lookup_backend
    cfg = torch._dynamo.config
    for key in ('recompile_limit', 'cache_size_limit'):  # renamed in torch 2.6
        if hasattr(cfg, key):
            setattr(cfg, key, args.compile_cache_limit)
    backend = lookup_backend(args.compile_backend)
    graphs = {'n': 0}

    def counting_backend(gm, example_inputs):
        graphs['n'] += 1
        return backend(gm, example_inputs)

    compiled = torch.compile(model, backend=counting_backend,
                             dynamic=DYNAMIC[args.compile_dynamic])
    return compiled, graphs


def check_size(model, compiled, graphs, x, timer) -> dict:
    """First compiled call at ``x``'s size: graphs compiled, seconds, max |compiled - eager|."""
    import torch
    before = graphs['n']
    t0 = time.perf_counter()
    with torch.inference_mode(), timer.autocast():
        out_c = compiled(x)
    timer.sync()
    first_call = time.perf_counter() - t0
    with torch.inference_mode(), timer.autocast():
        out_e = model(x)
    diff = max(float((a.float() - b.float()).abs().max()) for a, b in zip(out_c, out_e))
    H, W = x.shape[-2:]
    print(f'  [compile] {H}x{W}: {graphs["n"] - before} graph(s) compiled, first call '
          f'{first_call:.1f} s, max |diff| {diff:.2e}', file=sys.stderr, flush=True)
    return {'size': [H, W], 'graphs_compiled': graphs['n'] - before,
            'first_call_s': first_call, 'max_abs_diff': diff}


def compile_benchmark(args, timer) -> dict:
    """Compiled vs eager hiera_mm-exact: max |diff| and graphs compiled over three sizes, time."""
    import torch
    model = build_hiera_trunk(args.arch, 'exact').to(timer.device).eval()
    compiled, graphs = compile_counting_graphs(model, args)
    gen = torch.Generator().manual_seed(1)
    per_size = [check_size(model, compiled, graphs,
                           torch.randn(args.batch, 3, H, W, generator=gen).to(timer.device), timer)
                for H, W in compile_sizes(args)]
    pair = {'eager': Contender('eager', model, model, 'eager'),
            'compiled': Contender('compiled', model, compiled, 'compiled')}
    times = alternate(list(pair), lambda k: timer.measure(pair[k], 'fwd').seconds, args.runs,
                      args.warmup, 'compile')
    result = {
        'model': f'hiera_mm-exact ({args.arch})',
        'settings': f'torch.compile(backend={args.compile_backend}, '
                    f'dynamic={DYNAMIC[args.compile_dynamic]}), '
                    f'recompile limit {args.compile_cache_limit}',
        'sizes': per_size,
        'max_abs_diff': max(s['max_abs_diff'] for s in per_size),
        'total_graphs_compiled': graphs['n'],
        'recompiles': sum(1 for s in per_size[1:] if s['graphs_compiled'] > 0),
        'eager': summarize(times['eager'], args.batch),
        'compiled': summarize(times['compiled'], args.batch),
    }
    result['compiled_over_eager'] = result['compiled']['median_ms'] / result['eager']['median_ms']
    result['compiled_is_slower'] = result['compiled_over_eager'] > 1.0
    return result
