"""Importing registers only what is named: the torch-only core works where no framework is
installed, ``import hiera_mm`` registers and patches nothing, and each integration registers into
its own framework (and only there) when it is imported."""
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

FRAMEWORKS = ('mmcv', 'mmengine', 'mmdet', 'mmseg', 'detectron2')

# Hides the frameworks from every import finder, so that importing one fails exactly as in an
# environment where it is not installed (Python's own ModuleNotFoundError).
HIDE_FRAMEWORKS = textwrap.dedent(f'''
    import sys
    HIDDEN = {FRAMEWORKS!r}

    class Hide:
        def __init__(self, finder):
            self.finder = finder

        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in HIDDEN:
                return None
            return self.finder.find_spec(name, path, target)

        def __getattr__(self, attr):
            return getattr(self.finder, attr)

    sys.meta_path[:] = [Hide(finder) for finder in sys.meta_path]
''')


def run_python(code, cwd, prelude=''):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, '-c', prelude + textwrap.dedent(code)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def installed(name):
    return importlib.util.find_spec(name) is not None


def test_model_and_checkpoints_work_without_any_framework(tmp_path):
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
        print('ok')
    ''', tmp_path, prelude=HIDE_FRAMEWORKS)
    assert out.strip().endswith('ok')


@pytest.mark.parametrize('integration, framework', [
    ('hiera_mm.mmdet', 'mmdet'), ('hiera_mm.mmseg', 'mmseg'),
    ('hiera_mm.detectron2', 'detectron2')])
def test_an_integration_without_its_framework_names_the_framework(tmp_path, integration,
                                                                  framework):
    out = run_python(f'''
        try:
            import {integration}
        except ModuleNotFoundError as err:
            print('missing', err.name)
    ''', tmp_path, prelude=HIDE_FRAMEWORKS)
    # The first thing the integration needs is its own framework: that is what it names.
    word, missing = out.split()
    assert word == 'missing' and missing.split('.')[0] == framework, out


@pytest.mark.skipif(not installed('mmdet'), reason='needs mmdet (the [mmdet] extra)')
def test_plain_import_registers_and_patches_nothing(tmp_path):
    """Even where mmengine and mmdet are loaded (as mmengine's config loader has them), importing
    the package and its core modules leaves every registry and mmengine's loader alone."""
    out = run_python('''
        import sys
        import mmengine
        from mmdet.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS
        from mmengine.runner import CheckpointLoader
        loader = CheckpointLoader._schemes['']
        modules = set(sys.modules)

        import hiera_mm, hiera_mm.archs, hiera_mm.checkpoints, hiera_mm.models
        frameworks = {m for m in set(sys.modules) - modules
                      if m.split('.')[0] in ('mmcv', 'mmengine', 'mmdet', 'mmseg', 'detectron2')}
        assert not frameworks, frameworks
        assert not {m for m in sys.modules if m.startswith('hiera_mm.')} & {
            'hiera_mm.mmdet', 'hiera_mm.mmseg', 'hiera_mm.openmmlab', 'hiera_mm.detectron2'}
        assert MODELS.get('HieraBackbone') is None
        assert HOOKS.get('FiniteLossHook') is None
        assert OPTIM_WRAPPER_CONSTRUCTORS.get('HieraLayerDecayOptimizerConstructor') is None
        assert CheckpointLoader._schemes[''] is loader
        print('ok')
    ''', tmp_path)
    assert out.strip().endswith('ok')


@pytest.mark.skipif(not installed('mmdet'), reason='needs mmdet (the [mmdet] extra)')
def test_mmdet_integration_registers_into_mmdet_only(tmp_path):
    out = run_python('''
        import sys
        import torch
        import hiera_mm.mmdet
        from mmdet.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS
        from mmengine.runner import CheckpointLoader
        from hiera_mm.openmmlab import checkpoint_loader
        from hiera_mm.openmmlab.backbone import HieraBackbone

        assert MODELS.get('HieraBackbone') is HieraBackbone
        for hook in ('FiniteLossHook', 'AtomicCheckpointHook', 'TrustRunCheckpointsHook'):
            assert HOOKS.get(hook) is not None, hook
        assert OPTIM_WRAPPER_CONSTRUCTORS.get('HieraLayerDecayOptimizerConstructor') is not None
        # torch >= 2.6 loads with weights_only=True by default: only there is the loader replaced.
        newer = tuple(int(p) for p in torch.__version__.split('.')[:2]) >= (2, 6)
        replaced = CheckpointLoader._schemes[''] is checkpoint_loader.load_local_checkpoint
        assert replaced == newer, (torch.__version__, CheckpointLoader._schemes[''])
        assert 'hiera_mm.mmseg' not in sys.modules and 'hiera_mm.detectron2' not in sys.modules
        try:
            from mmseg.registry import MODELS as SEG_MODELS
        except ImportError:  # no mmseg here
            SEG_MODELS = None
        assert SEG_MODELS is None or SEG_MODELS.get('HieraBackbone') is None
        print('ok')
    ''', tmp_path)
    assert out.strip().endswith('ok')


@pytest.mark.skipif(not installed('mmseg'), reason='needs mmsegmentation (the [mmseg] extra)')
def test_mmseg_integration_registers_into_mmseg_only(tmp_path):
    out = run_python('''
        import sys
        import hiera_mm.mmseg
        from mmseg.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS
        from hiera_mm.openmmlab.backbone import HieraBackbone

        assert MODELS.get('HieraBackbone') is HieraBackbone
        assert HOOKS.get('TrustRunCheckpointsHook') is not None
        assert OPTIM_WRAPPER_CONSTRUCTORS.get('HieraLayerDecayOptimizerConstructor') is not None
        assert 'hiera_mm.mmdet' not in sys.modules
        try:
            from mmdet.registry import MODELS as DET_MODELS
        except ImportError:  # no mmdet here
            DET_MODELS = None
        assert DET_MODELS is None or DET_MODELS.get('HieraBackbone') is None
        print('ok')
    ''', tmp_path)
    assert out.strip().endswith('ok')


@pytest.mark.skipif(not installed('mmdet'), reason='needs mmdet (the [mmdet] extra)')
def test_config_naming_the_bare_package_is_refused_with_the_fix(tmp_path):
    """Configs of hiera_mm 0.1 list ``hiera_mm`` alone in custom_imports, which registers
    nothing: our tools refuse them naming the integration to list instead; with stock tools the
    model fails to build (mmengine's registry error)."""
    from mmengine.config import Config

    from hiera_mm.openmmlab import check_custom_imports

    old = tmp_path / 'old_config.py'
    old.write_text("custom_imports = dict(imports=['hiera_mm'], allow_failed_imports=False)\n"
                   "model = dict(type='RetinaNet', backbone=dict(type='HieraBackbone'))\n")
    cfg = Config.fromfile(str(old), import_custom_modules=False)
    with pytest.raises(ValueError, match=r"old_config.py: custom_imports names 'hiera_mm'.*"
                                         r"imports=\['hiera_mm.mmdet'\]"):
        check_custom_imports(cfg, 'mmdet')
    with pytest.raises(ValueError, match=r"imports=\['hiera_mm.mmseg'\]"):
        check_custom_imports(cfg, 'mmseg')
    for fine in (['hiera_mm.mmdet'], ['hiera_mm', 'hiera_mm.mmdet'], ['mmseg', 'hiera_mm.mmseg']):
        check_custom_imports(Config(dict(custom_imports=dict(imports=fine))))
    check_custom_imports(Config(dict(model=dict(type='RetinaNet'))))  # none at all

    # Our tools (train.py, test.py) read configs through load_config, which refuses it.
    from hiera_mm_tools.runner import load_config
    old.write_text(old.read_text() + "default_scope = 'mmdet'\n")
    with pytest.raises(ValueError, match=r"imports=\['hiera_mm.mmdet'\]"):
        load_config(str(old), work_dir=str(tmp_path / 'work'))

    # What a stock tool does with it: the import succeeds and registers nothing.
    out = run_python(f'''
        from mmengine.config import Config
        from mmdet.registry import MODELS
        cfg = Config.fromfile({str(old)!r})
        try:
            MODELS.build(cfg.model['backbone'])
        except KeyError as err:
            print('refused', err)
    ''', tmp_path)
    assert out.startswith('refused') and 'HieraBackbone is not in the' in out, out
