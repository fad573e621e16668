"""tools/analysis_tools/benchmark_backbone.py end to end: a --quick run of every contender, the
isolated-process memory, the Mask R-CNN training step, activation-checkpointing memory and the
torch.compile check; and that the backbone library (hiera_mm.benchmark) needs no mm package.

Only the structure and sanity of the numbers are checked (finite, positive, outputs that agree);
never the timings themselves, which depend on the machine and its load.
"""
import json
import math
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_backbone.py')
sys.path.insert(0, osp.dirname(TOOL))

import benchmark_backbone as tool  # noqa: E402
from hiera_mm.benchmark import contenders, timing  # noqa: E402

pytestmark = pytest.mark.slow


def _run(tmp_path, name, *extra, timeout=900):
    out = tmp_path / f'{name}.json'
    env = dict(os.environ, OMP_NUM_THREADS='2', HF_HUB_OFFLINE='1')
    proc = subprocess.run([sys.executable, TOOL, '--quick', '--out', str(out), *extra],
                          capture_output=True, text=True, timeout=timeout, cwd=str(tmp_path),
                          env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(out) as f:
        return json.load(f), proc.stdout


def _positive(v):
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    """--quick with every contender, both modes, plus the compile check on a codegen-free backend
    (inductor's C++ compilation takes minutes on a small CPU machine)."""
    return _run(tmp_path_factory.mktemp('bench'), 'quick', '--compile',
                '--compile-backend', 'aot_eager')


def test_quick_times_every_contender(quick):
    results, stdout = quick
    rows = results['contenders']
    expected = [n for n in contenders.ALL_CONTENDERS
                if contenders.unavailable_reason(n, tool.parse_args(['--quick'])) is None]
    assert set(expected) >= set(contenders.HIERA_CONTENDERS)
    assert list(rows) == expected
    for name, row in rows.items():
        assert _positive(row['params_M']), name
        for mode in ('fwd', 'fwdbwd'):
            r = row[mode]
            assert len(r['times_ms']) == 1 and all(_positive(t) for t in r['times_ms']), name
            assert _positive(r['median_ms']) and _positive(r['min_ms']), name
            assert _positive(r['images_per_s']), name
            for ref in ('hf-hiera', 'swin-t'):
                if ref in rows:
                    assert _positive(r[f'ratio_vs_{ref}']), (name, ref)
        assert row['fwd'].get('ratio_vs_hf-hiera', 1.0) > 0
    if 'hf-hiera' in rows:
        assert rows['hf-hiera']['fwd']['ratio_vs_hf-hiera'] == pytest.approx(1.0)
    cfg = results['config']
    assert cfg['size'] == [128, 128] and cfg['runs'] == 1 and cfg['warmup'] == 0
    assert cfg['arch'] == 'tiny'
    machine = results['machine']
    assert machine['torch_threads'] == 2 and machine['cpu_model'] and machine['torch_version']
    assert machine['device'] == 'cpu' and machine['device_name']
    assert '### forward' in stdout and '### forward + backward' in stdout
    for name in rows:
        assert f'| {name} |' in stdout


def test_quick_compile_matches_eager(quick):
    comp = quick[0]['compile']
    assert comp['max_abs_diff'] <= 1e-4
    assert [s['size'] for s in comp['sizes']] == [[128, 128], [96, 128], [128, 96]]
    # dynamic=False: every new size is a new graph, and no size runs uncompiled.
    assert comp['sizes'][0]['graphs_compiled'] >= 1
    assert comp['recompiles'] == 2
    assert _positive(comp['eager']['median_ms']) and _positive(comp['compiled']['median_ms'])
    assert comp['compiled_over_eager'] == pytest.approx(
        comp['compiled']['median_ms'] / comp['eager']['median_ms'])
    assert comp['compiled_is_slower'] == (comp['compiled']['median_ms'] > comp['eager']['median_ms'])


def test_isolated_memory_train_step_and_checkpointing(tmp_path):
    results, stdout = _run(tmp_path, 'iso', '--isolate', '--train-step', '--with-cp-memory',
                           '--mode', 'fwd', '--contenders', 'hiera_mm-exact,swin-t')
    rows = results['contenders']
    assert list(rows) == ['hiera_mm-exact', 'swin-t']
    assert all(_positive(r['fwd']['median_ms']) for r in rows.values())
    assert all('fwdbwd' not in r for r in rows.values())

    mem = results['memory']
    base = mem['torch_only_process']
    assert _positive(base['peak_mib'])
    for name in rows:
        rep = mem['contenders'][name]['fwd']
        assert 'error' not in rep, rep
        assert _positive(rep['peak_mib']) and rep['peak_mib'] >= base['peak_mib'] * 0.9
        # The process grows past its own imports when it builds and runs a model.
        assert rep['peak_mib'] >= rep['after_import']['peak_rss_mib']
        assert _positive(rep['peak_above_import_mib'])
    assert 'Peak memory' in stdout

    ts = results['train_step']['results']
    assert list(ts) == ['mask-rcnn_hiera-tiny', 'mask-rcnn_swin-t']
    for r in ts.values():
        assert _positive(r['median_ms']) and r['loss_finite']

    cp = results['with_cp_memory']
    assert cp['arch'] == 'tiny'
    for key in ('with_cp=False', 'with_cp=True'):
        assert 'error' not in cp[key], cp[key]
        assert _positive(cp[key]['peak_mib']) and cp[key]['with_cp'] == (key == 'with_cp=True')
    assert _positive(cp['peak_ratio'])


def test_parse_args_presets():
    quick = tool.parse_args(['--quick', '--size', '64', '96', '--contenders', 'r50,swin-t'])
    assert quick.size == (64, 96) and quick.runs == 1 and quick.warmup == 0
    assert quick.contenders == ['r50', 'swin-t'] and quick.cp_arch == 'tiny'
    full = tool.parse_args([])
    assert full.size == (800, 1344) and full.runs == 5 and full.warmup == 2
    assert full.threads == 2 and full.arch == 'tiny' and full.cp_arch == 'base'


def test_alternating_rounds_rotate_and_drop_warmup():
    calls = []
    times = timing.alternate(['a', 'b', 'c'], lambda k: calls.append(k) or 1.0,
                                runs=2, warmup=1)
    assert calls == ['a', 'b', 'c', 'b', 'c', 'a', 'c', 'a', 'b']
    assert times == {'a': [1.0, 1.0], 'b': [1.0, 1.0], 'c': [1.0, 1.0]}


def test_library_imports_no_mm_package():
    """The backbone comparison is torch-only: its modules and its Hiera bring no mm package."""
    code = ('import sys, torch;'
            ' from hiera_mm.benchmark import compile_check, contenders, memory, report, timing;'
            ' m = contenders.load_hiera_module();'
            ' x = m.build_hiera("tiny")(torch.zeros(1, 3, 64, 64));'
            ' assert [t.shape[1] for t in x] == [16, 8, 4, 2];'
            ' assert not {"mmdet", "mmengine", "mmcv"} & set(sys.modules); print("ok")')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr[-2000:]


def test_markdown_tables_keep_their_layout():
    """Empty cells are written '| |' (error rows), as before the tables were generated."""
    from hiera_mm.benchmark.report import table
    assert table(['a', 'b', 'c'], [['x', 'error: e', ''], [1, True, 2.5]]).splitlines() == [
        '| a | b | c |', '|---|---|---|', '| x | error: e | |', '| 1 | True | 2.5 |']


def test_help_runs_standalone():
    proc = subprocess.run([sys.executable, TOOL, '--help'], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and '--contenders' in proc.stdout, proc.stderr[-2000:]


@pytest.mark.parametrize('name', sorted(contenders.ONNX_CONTENDERS))
def test_onnxruntime_rows_compute_what_eager_computes(name):
    """The onnxruntime rows time the same function as their eager twin, at a size off the grid
    (the graph is recorded at the benchmark size and must hold at others too)."""
    pytest.importorskip('onnxruntime', reason='the [deploy] extra is not installed')
    import torch
    args = tool.parse_args(['--quick', '--mode', 'fwd', '--size', '64', '96', '--arch', 'tiny'])
    assert contenders.unavailable_reason(name, args) is None
    exported = contenders.build_contender(name, args)
    eager = contenders.build_contender(contenders.ONNX_CONTENDERS[name], args).module.eval()
    for size in ((64, 96), (50, 70)):
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected = eager(contenders.pad_to(x, 32))
        got = exported.run(x)
        assert [g.shape for g in got] == [e.shape for e in expected]
        assert max((g - e).abs().max().item() for g, e in zip(got, expected)) < 1e-4
    both = tool.parse_args(['--quick', '--mode', 'both'])
    assert 'forward only' in contenders.unavailable_reason(name, both)
