"""tools/analysis_tools/gpu_check.py: the same code as on a GPU, run with ``--device cpu --quick``
so that it never rots; and its loud failure where SDPA would fall back to the math kernel."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

GPU_CHECK = os.path.join(ROOT, 'tools', 'analysis_tools', 'gpu_check.py')


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory):
    from hiera_mm_tools import gpu_check
    out = tmp_path_factory.mktemp('gpu_check')
    code = gpu_check.main(['--device', 'cpu', '--quick', '--out', str(out)])
    with open(out / 'gpu_check.json') as f:
        data = json.load(f)
    return code, data, (out / 'gpu_check.md').read_text()


def rows(data, section):
    return [r for r in data['rows'] if r['section'] == section]


def test_quick_cpu_run_passes_and_writes_json_and_markdown(quick_run):
    code, data, md = quick_run
    assert code == 0, [r for r in data['rows'] if r['status'] == 'FAIL']
    assert data['failed'] == 0
    assert {r['section'] for r in data['rows']} == {'env', 'parity', 'autocast', 'sdpa', 'speed',
                                                     'train'}
    assert md.startswith('GPU check on **CPU (no GPU was used)**')
    assert md.count('\n| ') == len(data['rows']) + 1  # header + one line per row
    # the versions of what ran, as pip reports them (mmseg's distribution is mmsegmentation)
    from importlib.metadata import version
    assert data['env']['torch'] == torch.__version__
    assert data['env']['mmdet'] == version('mmdet') and data['env']['mmseg'] == version(
        'mmsegmentation') and data['env']['transformers'] == version('transformers')


def test_parity_with_transformers_within_1e4(quick_run):
    parity = rows(quick_run[1], 'parity')
    assert len(parity) == 2 and all(r['status'] == 'ok' for r in parity)
    assert all(r['max_abs_diff'] <= 1e-4 for r in parity)


def test_autocast_bounds_for_every_family(quick_run):
    autocast = [r for r in rows(quick_run[1], 'autocast') if r['status'] != 'skipped']
    assert {r['check'].split()[0] for r in autocast} == {'hiera', 'sam2', 'abswin'}
    assert any(r['check'].endswith('bf16') for r in autocast)
    for r in autocast:
        assert r['status'] == 'ok' and 0 < r['max_rel_err'] <= r['bound'], r


def test_fused_attention_rows(quick_run):
    sdpa = rows(quick_run[1], 'sdpa')
    assert len(sdpa) >= 4 and all(r['status'] == 'ok' for r in sdpa), sdpa


def test_speed_rows_cover_contenders_and_compile(quick_run):
    speed = rows(quick_run[1], 'speed')
    names = ' '.join(r['check'] for r in speed)
    for contender in ('hiera_mm Hiera-T exact', 'hiera_mm Hiera-T windowed', 'hiera_mm SAM2-T',
                      'transformers HieraModel', 'timm hiera_tiny_224', 'mmdet Swin-T',
                      'SAM2 hieradet'):
        assert contender in names, contender
    for r in speed:  # every row measured, or says why not
        assert r['status'] == 'ok' and r['ms'] > 0 or r['note'], r
    ours = [r for r in speed if r['check'].startswith('hiera_mm') and r['status'] == 'ok']
    assert {'fwd', 'fwd+bwd'} <= {r['check'].split()[-2] for r in ours}
    assert any('compile' in r['check'] and r['compile_s'] > 0 for r in ours)


def test_training_rows_say_needs_cuda_with_the_tools_own_refusal(quick_run):
    train = rows(quick_run[1], 'train')
    assert [r['check'].split()[0] for r in train] == ['mmdet', 'mmseg', 'detectron2']
    assert all(r['status'] == 'needs CUDA' for r in train), train
    for r in train[:2]:  # tools/train.py ran and refused AMP without a GPU, naming the fix
        assert 'tools/train.py refused: AMP training' in r['note']
        assert 'optim_wrapper.type=OptimWrapper' in r['note']


def test_sdpa_check_fails_loudly_without_a_fused_kernel():
    """Restricted to a backend that cannot run here (no memory-efficient kernel on the CPU), the
    check reports torch's error instead of falling back to the math kernel."""
    from torch.nn.attention import SDPBackend

    from hiera_mm.models.hiera import build_hiera
    from hiera_mm_tools.gpu_check import sdpa_check
    model = build_hiera(dict(embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8)))
    x = torch.randn(1, 3, 64, 64)
    device = torch.device('cpu')
    assert sdpa_check(device, model, x, torch.float32, [SDPBackend.FLASH_ATTENTION]) is None
    error = sdpa_check(device, model, x, torch.float32, [SDPBackend.EFFICIENT_ATTENTION])
    assert error and 'No viable backend' in error


def test_train_section_outside_a_checkout_says_so(tmp_path, monkeypatch):
    """hiera_mm_tools installed from a wheel has no tools/train.py beside it: the training rows
    are one skipped row that names the fix, not failures."""
    from hiera_mm_tools import gpu_check
    monkeypatch.setattr(gpu_check, 'REPO_ROOT', str(tmp_path))
    report = gpu_check.Report(gpu_check.parse_args(['--device', 'cpu', '--quick']))
    gpu_check.check_train(report, report.args, torch.device('cpu'))
    assert [(r['check'], r['status']) for r in report.rows] == [
        ('AMP training iterations', 'skipped')]
    assert 'from a hiera_mm clone' in report.rows[0]['note']


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message without a GPU')
def test_cuda_without_a_gpu_names_the_cpu_command():
    proc = subprocess.run([sys.executable, GPU_CHECK, '--sections', 'env'], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode != 0
    assert '--device cpu --quick' in proc.stderr
