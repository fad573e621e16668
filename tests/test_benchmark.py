"""tools/analysis_tools/benchmark_backbone.py and its harness (hiera_mm_tools.benchmark) end to
end: a --quick run of every default contender, the isolated-process memory, the Mask R-CNN
training step, activation-checkpointing memory and the torch.compile check; the rows plugged in
from Detectron2 (the whole Mask R-CNN, eager and under onnxruntime); another copy of hiera.py as a
contender; and that the harness and its plug-ins import no framework until a row needs one.

The timings themselves depend on the machine and its load and are not checked; what is checked
is what the numbers are made of (ratios are ratios of the reported medians) and that the rows
which claim to compute the same function do (onnxruntime against eager, a copy of hiera.py
against the installed one).
"""
import importlib.util
import json
import math
import os
import os.path as osp
import statistics
import subprocess
import sys

import pytest

from conftest import ROOT, run_tool
from hiera_mm_tools.benchmark import contenders, timing

TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_backbone.py')
# The commit before the trunk's deployment work: a hiera.py without relative imports.
OLD_HIERA_COMMIT = 'cc19684'

pytestmark = pytest.mark.slow


def load_tool():
    """The tool script as a module (it loads the plug-ins, which register their rows)."""
    spec = importlib.util.spec_from_file_location('benchmark_backbone_under_test', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def _run(tmp_path, name, *extra, timeout=900):
    out = tmp_path / f'{name}.json'
    env = dict(os.environ, HF_HUB_OFFLINE='1')  # the tool sets its own threads (--threads)
    proc = run_tool([sys.executable, TOOL, '--quick', '--out', str(out), *extra],
                    timeout=timeout, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(out) as f:
        return json.load(f), proc.stdout


def _positive(v):
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def check_ratios(rows, mode, references):
    """Each row's ratio to each reference that ran is the ratio of the medians of the times the
    JSON reports, and its paired ratio the median of the per-round ratios; there is no ratio to a
    contender that did not run."""
    ran = [ref for ref in references if ref in rows and mode in rows[ref]]
    for name, row in rows.items():
        r = row[mode]
        assert sorted(k for k in r if k.startswith('ratio_vs_')) == sorted(
            f'ratio_vs_{ref}' for ref in ran), (name, sorted(r))
        for ref in ran:
            ref_times = rows[ref][mode]['times_ms']
            assert r[f'ratio_vs_{ref}'] == pytest.approx(
                statistics.median(r['times_ms']) / statistics.median(ref_times), rel=1e-9)
            assert r[f'paired_ratio_vs_{ref}'] == pytest.approx(
                statistics.median(a / b for a, b in zip(r['times_ms'], ref_times)), rel=1e-9)
    return ran


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    """--quick (2 rounds) with every default contender, both modes, plus the compile check on a
    codegen-free backend (inductor's C++ compilation takes minutes on a small CPU machine)."""
    return _run(tmp_path_factory.mktemp('bench'), 'quick', '--runs', '2', '--compile',
                '--compile-backend', 'aot_eager')


def test_quick_times_every_contender(quick):
    results, stdout = quick
    rows = results['contenders']
    args = tool.parse_args(['--quick'])
    expected = [n for n in contenders.default_names()
                if contenders.unavailable_reason(n, args) is None]
    assert set(expected) >= set(contenders.HIERA_CONTENDERS)
    assert 'swin-t' in expected and 'hf-hiera' in expected  # mmdet (or timm), transformers
    assert not any(n.startswith('d2-') for n in expected)  # only when named
    assert list(rows) == expected
    for name, row in rows.items():
        assert _positive(row['params_M']), name
        for mode in ('fwd', 'fwdbwd'):
            r = row[mode]
            assert len(r['times_ms']) == 2 and all(_positive(t) for t in r['times_ms']), name
            assert r['median_ms'] == pytest.approx(statistics.median(r['times_ms']))
            assert r['min_ms'] == pytest.approx(min(r['times_ms']))
            assert r['images_per_s'] == pytest.approx(1e3 / r['median_ms'])
    for mode in ('fwd', 'fwdbwd'):
        assert check_ratios(rows, mode, ['hf-hiera', 'swin-t']) == ['hf-hiera', 'swin-t']
    cfg = results['config']
    assert cfg['size'] == [128, 128] and cfg['runs'] == 2 and cfg['warmup'] == 0
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
    assert rows['swin-t']['impl'] == 'mmdet SwinTransformer (Swin-T)'  # the plug-in's, first
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
        assert r['ratio_vs_swin-t'] == pytest.approx(
            r['median_ms'] / ts['mask-rcnn_swin-t']['median_ms'])
    assert '### One Mask R-CNN training step' in stdout

    cp = results['with_cp_memory']
    assert cp['arch'] == 'tiny'
    for key in ('with_cp=False', 'with_cp=True'):
        assert 'error' not in cp[key], cp[key]
        assert _positive(cp[key]['peak_mib']) and cp[key]['with_cp'] == (key == 'with_cp=True')
    assert cp['peak_ratio'] == pytest.approx(
        cp['with_cp=True']['peak_mib'] / cp['with_cp=False']['peak_mib'])


def test_parse_args_presets():
    quick = tool.parse_args(['--quick', '--size', '64', '96', '--contenders', 'r50,swin-t'])
    assert quick.size == (64, 96) and quick.runs == 1 and quick.warmup == 0
    assert quick.contenders == ['r50', 'swin-t'] and quick.cp_arch == 'tiny'
    full = tool.parse_args([])
    assert full.size == (800, 1344) and full.runs == 5 and full.warmup == 2
    assert full.threads == 2 and full.arch == 'tiny' and full.cp_arch == 'base'


def test_unknown_contender_names_the_choices(capsys):
    args = tool.parse_args(['--quick', '--contenders', 'hiera-mm-exact'])
    with pytest.raises(SystemExit) as exc:
        contenders.select_contenders(args)
    assert 'hiera-mm-exact: unknown contender (choose from' in str(exc.value)
    assert 'd2-mask-rcnn-onnxruntime' in str(exc.value)


def test_alternating_rounds_rotate_and_drop_warmup():
    calls = []
    times = timing.alternate(['a', 'b', 'c'], lambda k: calls.append(k) or 1.0,
                             runs=2, warmup=1)
    assert calls == ['a', 'b', 'c', 'b', 'c', 'a', 'c', 'a', 'b']
    assert times == {'a': [1.0, 1.0], 'b': [1.0, 1.0], 'c': [1.0, 1.0]}


def test_ratios_are_ratios_of_the_medians():
    rows = {'a': {'fwd': timing.summarize([0.010, 0.030, 0.020], 1)},
            'b': {'fwd': timing.summarize([0.040, 0.020, 0.080], 1)}}
    timing.add_ratios(rows, 'fwd', ['b'])
    assert rows['a']['fwd']['ratio_vs_b'] == pytest.approx(20 / 40)
    assert rows['a']['fwd']['paired_ratio_vs_b'] == pytest.approx(0.25)  # of 1/4, 3/2, 1/4
    assert rows['b']['fwd']['ratio_vs_b'] == pytest.approx(1.0)


def test_harness_and_plugins_import_no_framework():
    """The harness and its plug-ins import no framework until a row needs one, and the trunk it
    times is plain torch."""
    code = ('import sys, torch;'
            ' from hiera_mm_tools.benchmark import compile_check, contenders, memory, report, timing;'
            ' contenders.load_plugins(["hiera_mm_tools.benchmark.openmmlab",'
            ' "hiera_mm_tools.benchmark.detectron2"]);'
            ' assert "d2-mask-rcnn-eager" in contenders.REGISTRY and "train_step" in contenders.EXTRAS;'
            ' m = contenders.load_hiera_module();'
            ' x = m.build_hiera("tiny")(torch.zeros(1, 3, 64, 64));'
            ' assert [t.shape[1] for t in x] == [16, 8, 4, 2];'
            ' loaded = {"mmdet", "mmengine", "mmcv", "mmseg", "detectron2"} & set(sys.modules);'
            ' assert not loaded, loaded; print("ok")')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr[-2000:]


def test_markdown_tables_keep_their_layout():
    """Empty cells are written '| |' (error rows), as before the tables were generated."""
    from hiera_mm_tools.benchmark.report import table
    assert table(['a', 'b', 'c'], [['x', 'error: e', ''], [1, True, 2.5]]).splitlines() == [
        '| a | b | c |', '|---|---|---|', '| x | error: e | |', '| 1 | True | 2.5 |']


def test_help_runs_standalone():
    proc = run_tool([sys.executable, TOOL, '--help'], timeout=120)
    assert proc.returncode == 0 and '--contenders' in proc.stdout, proc.stderr[-2000:]
    assert 'd2-mask-rcnn-onnxruntime' in ''.join(proc.stdout.split())  # (wrapped)


def _old_hiera(tmp_path):
    proc = subprocess.run(['git', 'show', f'{OLD_HIERA_COMMIT}:hiera_mm/models/hiera.py'],
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f'commit {OLD_HIERA_COMMIT} is not in this clone (git show: '
                    f'{proc.stderr.strip()[:200]}); a full clone has it')
    path = tmp_path / 'hiera_cc19684.py'
    path.write_text(proc.stdout)
    return path


def test_another_copy_of_hiera_py_is_a_contender(tmp_path):
    """``hiera_mm-exact@path``: a copy of the current hiera.py (whose ``from ..archs import``
    resolves to the installed library) and the file of an older commit (no relative imports)
    compute what the installed trunk computes, from the same seed."""
    import torch

    import hiera_mm.archs
    copy = tmp_path / 'hiera_copy.py'
    copy.write_text(open(contenders.HIERA_FILE).read())
    args = tool.parse_args(['--quick', '--mode', 'fwd', '--size', '64', '96'])
    installed = contenders.build_contender('hiera_mm-exact', args)
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = installed.run(x)
    for path in (copy, _old_hiera(tmp_path)):
        name = f'hiera_mm-exact@{path}'
        assert contenders.unavailable_reason(name, args) is None
        row = contenders.build_contender(name, args)
        module = sys.modules[type(row.module).__module__]
        assert module.__name__.startswith('hiera_mm.models.') and module.__file__ == str(path)
        assert str(path) in row.impl
        with torch.no_grad():
            got = row.run(x)
        assert [g.shape for g in got] == [(1, 16, 24, 96), (1, 8, 12, 192), (1, 4, 6, 384),
                                          (1, 2, 3, 768)]
        assert all(torch.equal(g, e) for g, e in zip(got, expected)), path
    assert sys.modules[type(row.module).__module__] is not hiera_mm.models.hiera
    copied = contenders.load_hiera_module(str(copy))
    assert copied.check_arch is hiera_mm.archs.check_arch  # its relative import, resolved
    assert 'no file' in contenders.unavailable_reason('hiera_mm-exact@/nonexistent.py', args)
    assert 'only the hiera_mm contenders' in contenders.unavailable_reason(
        f'swin-t@{copy}', args)


@pytest.mark.parametrize('name', sorted(contenders.ONNX_CONTENDERS))
def test_onnxruntime_rows_compute_what_eager_computes(name):
    """The onnxruntime rows time the same function as their eager twin, at a size off the grid
    (the graph is recorded at the benchmark size and must hold at others too)."""
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


@pytest.fixture(scope='module')
def d2_rows():
    """The trunk and whole-detector rows of the README's command, built once at 64x96."""
    args = tool.parse_args(['--quick', '--mode', 'fwd', '--size', '64', '96', '--runs', '2',
                            '--contenders', 'hiera_mm-exact', 'onnxruntime-exact',
                            'd2-mask-rcnn-eager', 'd2-mask-rcnn-onnxruntime',
                            '--baseline', 'hiera_mm-exact'])
    names, notes = contenders.select_contenders(args)
    assert names == args.contenders, notes
    return args, {name: contenders.build_contender(name, args) for name in names}


def test_detectron2_mask_rcnn_rows_compute_what_eager_computes(d2_rows):
    """d2-mask-rcnn-onnxruntime (the whole Mask R-CNN exported at 64x96 through TracingAdapter)
    gives d2-mask-rcnn-eager's detections, at the export size and at one off the 32-px grid: the
    full 100 per image (score threshold 0), the same classes, boxes and scores, mask
    probabilities."""
    import torch

    from hiera_mm_tools.export.detectron2 import compare
    _, rows = d2_rows
    eager, exported = rows['d2-mask-rcnn-eager'], rows['d2-mask-rcnn-onnxruntime']
    assert eager.params_m == pytest.approx(exported.params_m)
    assert 'TracingAdapter, opset 17' in exported.impl
    gen = torch.Generator().manual_seed(5)
    for size in ((64, 96), (75, 110)):
        x = torch.randn(1, 3, *size, generator=gen)
        with torch.no_grad():
            ref = eager.instances(x)
        result = compare(ref, exported.instances(x))
        print(size, result)
        assert result['pytorch'] == result['exported'] == result['matched'] == 100, result
        assert result['same_image_size'], result
        assert result['max_box_diff'] <= 1e-3 and result['max_score_diff'] <= 1e-4, result
        assert result['max_mask_prob_diff'] <= 1e-4, result
        boxes, classes, masks, scores = exported.run(x)
        assert boxes.shape == (100, 4) and masks.shape == (100, 1, 28, 28)
    both = tool.parse_args(['--quick', '--mode', 'both'])
    assert 'inference of one image' in contenders.unavailable_reason('d2-mask-rcnn-eager', both)


def test_detectron2_rows_in_the_table_beside_the_trunk(d2_rows):
    """The README's whole-detector command at a small size: the d2 rows and the trunk rows timed
    in the same alternating rounds, ratios to the baseline from the reported medians, one table."""
    from hiera_mm_tools.benchmark.report import timing_tables
    args, built = d2_rows
    rows = {name: {'impl': c.impl, 'params_M': c.params_m} for name, c in built.items()}
    timing.time_mode(built, 'fwd', timing.Timer(args), args, rows)
    assert check_ratios(rows, 'fwd', ['hiera_mm-exact', 'swin-t']) == ['hiera_mm-exact']
    assert all(len(r['fwd']['times_ms']) == 2 for r in rows.values())
    assert rows['d2-mask-rcnn-eager']['params_M'] > rows['hiera_mm-exact']['params_M']
    text = '\n'.join(timing_tables({'config': vars(args), 'contenders': rows}))
    assert '### forward' in text and '### forward + backward' not in text
    for name in built:
        assert f'| {name} |' in text
