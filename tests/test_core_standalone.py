"""The torch-only core: ``hiera_mm.models.hiera`` and ``hiera_mm.checkpoints`` work with the mm
stack absent, and the package registers into mmdet only where the mm stack is in use."""
import os
import subprocess
import sys
import textwrap

from conftest import ROOT

# Makes mmcv / mmengine / mmdet (and detectron2) unimportable, as in an environment without them.
BLOCKER = textwrap.dedent('''
    import sys
    BLOCKED = ('mmcv', 'mmengine', 'mmdet', 'mmseg', 'detectron2')

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ModuleNotFoundError(f'No module named {name!r} (blocked)', name=name)
            return None

    sys.meta_path.insert(0, Block())
''')


def run_python(code, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, '-c', BLOCKER + textwrap.dedent(code)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_model_and_checkpoints_work_without_the_mm_stack(tmp_path):
    out = run_python('''
        import torch
        import hiera_mm
        from hiera_mm.models.hiera import build_hiera
        from hiera_mm.checkpoints import convert_state_dict, read_state_dict
        from safetensors.torch import save_file

        torch.manual_seed(0)
        model = build_hiera('tiny').eval()
        save_file({'trunk.' + k: v.contiguous() for k, v in model.state_dict().items()},
                  'tiny.safetensors')
        converted = convert_state_dict(read_state_dict('tiny.safetensors'))
        assert converted['layout'] == 'hiera_mm' and not converted['dropped']
        again = build_hiera('tiny').eval()
        again.load_state_dict(converted['trunk'], strict=True)
        x = torch.randn(1, 3, 96, 128)
        with torch.no_grad():
            maps, maps_again = model(x), again(x)
        assert [tuple(m.shape) for m in maps] == [  # NHWC stage maps at strides 4..32
            (1, 24, 32, 96), (1, 12, 16, 192), (1, 6, 8, 384), (1, 3, 4, 768)]
        assert all(torch.equal(a, b) for a, b in zip(maps, maps_again))
        loaded = {m for m in sys.modules if m.split('.')[0] in ('mmcv', 'mmengine', 'mmdet')}
        assert not loaded, loaded
        print('ok')
    ''', tmp_path)
    assert out.strip().endswith('ok')


def test_mmdet_integration_says_what_is_missing(tmp_path):
    out = run_python('''
        try:
            import hiera_mm.mmdet
        except ModuleNotFoundError as err:
            print('refused:', err)
    ''', tmp_path)
    assert 'refused:' in out and 'blocked' in out


def test_plain_import_registers_only_where_the_mm_stack_is_loaded():
    code = ('import sys, hiera_mm; assert "mmdet" not in sys.modules;'
            ' import mmengine, importlib; importlib.reload(hiera_mm);'
            ' from mmdet.registry import MODELS; assert MODELS.get("HieraBackbone") is not None;'
            ' print("ok")')
    proc = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, PYTHONPATH=ROOT),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr[-3000:]
