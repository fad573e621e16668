"""The wheel, installed as a user installs it: into an environment that already has the stack.

The wheel is built once and installed (``hiera_mm[mmdet]``) into an environment layered on
``.venv-oldest`` (the tested floors: its packages are visible and count as installed); no package
of that environment may change. From there, outside the checkout, the shipped configs are found and used.
"""
import os
import os.path as osp
import shutil
import subprocess
import textwrap

import pytest

from conftest import ROOT

OLDEST_PYTHON = os.environ.get('HIERA_MM_OLDEST_PYTHON',
                               osp.join(ROOT, '.venv-oldest', 'bin', 'python'))
# What the user's environment holds and an install of hiera_mm must leave as it is.
FRAMEWORK_PACKAGES = {'torch', 'torchvision', 'numpy', 'mmcv', 'mmengine', 'mmdet', 'transformers',
                      'opencv-python', 'setuptools', 'huggingface-hub', 'safetensors',
                      'pycocotools', 'timm'}

pytestmark = pytest.mark.slow


def run(args, cwd, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}  # no checkout on the path
    res = subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=900, **kwargs)
    assert res.returncode == 0, ' '.join(map(str, args)) + '\n' + res.stdout[-4000:]
    return res.stdout


def freeze(python, cwd):
    lines = run([python, '-m', 'pip', 'freeze', '--all'], cwd).splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith('#')}


def name_of(requirement):
    return requirement.split('==')[0].split(' @ ')[0].lower().replace('_', '-')


@pytest.fixture(scope='module')
def layered_env(tmp_path_factory):
    if not osp.isfile(OLDEST_PYTHON):
        pytest.skip(f'{OLDEST_PYTHON} missing: `make setup` builds .venv-oldest')
    tmp = tmp_path_factory.mktemp('wheel')
    # Build from a copy of the sources, so the checkout gets no build/ or egg-info of this test.
    src = tmp / 'src'
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        '.git', '.venv*', 'work_dirs', 'data', 'build', 'dist', '*.egg-info', '__pycache__',
        '.pytest_cache'))
    run([OLDEST_PYTHON, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
         '-w', str(tmp / 'dist'), str(src)], tmp)
    wheel, = (tmp / 'dist').glob('hiera_mm-*.whl')
    env_dir = tmp / 'layer'
    run([OLDEST_PYTHON, '-m', 'venv', str(env_dir)], tmp)
    python = str(env_dir / 'bin' / 'python')
    # A venv made from a venv takes the *base* interpreter's site-packages as its system ones;
    # a .pth file layers it on .venv-oldest's instead (they come after its own on sys.path, and
    # pip sees them as installed, as in a user's environment).
    site = run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], tmp)
    oldest_site = run([OLDEST_PYTHON, '-c',
                       'import sysconfig; print(sysconfig.get_paths()["purelib"])'], tmp)
    with open(osp.join(site.strip(), 'layer_on_oldest.pth'), 'w') as f:
        f.write(oldest_site.strip() + '\n')
    before = freeze(python, tmp)
    install_log = run([python, '-m', 'pip', 'install', '--disable-pip-version-check',
                       f'{wheel}[mmdet]'], tmp)
    after = freeze(python, tmp)
    return dict(python=python, tmp=tmp, before=before, after=after, log=install_log,
                wheel=str(wheel))


def test_install_into_an_existing_environment_changes_no_package(layered_env):
    before, after = layered_env['before'], layered_env['after']
    assert {name_of(r) for r in before} >= {'torch', 'numpy', 'mmcv', 'mmengine', 'mmdet'}
    changed = {name_of(r) for r in before ^ after}
    assert changed == {'hiera-mm'}, f'the install changed {sorted(changed)}:\n{layered_env["log"]}'
    assert not FRAMEWORK_PACKAGES & changed


def test_installed_wheel_ships_the_configs_and_registers_for_mmdet(layered_env):
    python, tmp = layered_env['python'], layered_env['tmp']
    name = 'mask_rcnn/mask-rcnn_hiera-t_fpn_1x_coco.py'
    path = run([python, '-m', 'hiera_mm.configs', name], tmp).strip()
    site = osp.join(str(tmp), 'layer')
    assert path.startswith(site) and path.endswith(name), path
    listed = run([python, '-m', 'hiera_mm.configs', '--list'], tmp).split()
    assert name in listed and 'retinanet/retinanet_hiera-t_fpn_1x_coco.py' in listed
    # A user's own config inheriting ours by the printed path, read and built with the registry.
    user_cfg = tmp / 'my_config.py'
    user_cfg.write_text(f"_base_ = {path!r}\nmodel = dict(backbone=dict(init_cfg=None))\n")
    # The installed package registers nothing when imported; the config's custom_imports
    # (hiera_mm.mmdet) does, from the installed wheel.
    code = textwrap.dedent(f'''
        import sys
        import hiera_mm
        from mmengine.config import Config
        from mmdet.utils import register_all_modules
        from mmdet.registry import MODELS
        register_all_modules()
        assert MODELS.get('HieraBackbone') is None and 'hiera_mm.mmdet' not in sys.modules
        cfg = Config.fromfile({str(user_cfg)!r})
        model = MODELS.build(cfg.model)
        assert type(model.backbone).__name__ == 'HieraBackbone'
        for module in ('hiera_mm', 'hiera_mm.mmdet', type(model.backbone).__module__):
            assert sys.modules[module].__file__.startswith({site!r}), sys.modules[module].__file__
        print('built', type(model).__name__)
    ''')
    assert 'built MaskRCNN' in run([python, '-c', code], tmp)


def test_wheel_requires_no_framework_beyond_each_extra(layered_env):
    """``pip install hiera_mm`` (a Detectron2 user's install) pulls nothing of OpenMMLab, so it
    never builds mmcv; each OpenMMLab extra names only its own framework."""
    import zipfile
    with zipfile.ZipFile(layered_env['wheel']) as wheel:
        meta, = (n for n in wheel.namelist() if n.endswith('.dist-info/METADATA'))
        requires = [line.split(':', 1)[1].strip() for line in
                    wheel.read(meta).decode().splitlines() if line.startswith('Requires-Dist:')]
        shipped = wheel.namelist()
    by_extra = {}
    for req in requires:
        spec, _, marker = req.partition(';')
        extra = marker.split('extra ==')[1].strip().strip('"\'') if 'extra ==' in marker else ''
        by_extra.setdefault(extra, set()).add(name_of(spec.split('>')[0].split('<')[0]
                                                      .split('=')[0].strip()))
    assert by_extra[''] == {'torch', 'huggingface-hub', 'safetensors'}, by_extra['']
    assert {'mmcv', 'mmengine', 'mmdet'} <= by_extra['mmdet']
    assert 'mmsegmentation' not in by_extra['mmdet']
    assert {'mmcv', 'mmengine', 'mmsegmentation'} <= by_extra['mmseg']
    assert 'mmdet' not in by_extra['mmseg']
    assert not any('detectron2' in names for names in by_extra.values())
    for config in ('detectron2/mask_rcnn_hiera_b_100ep.py',
                   'detectron2/_base_/mask_rcnn_hiera_fpn.py',
                   'mmseg/upernet/upernet_hiera-t_8xb2-160k_ade20k-512x512.py'):
        assert f'hiera_mm/.mim/configs/{config}' in shipped, config
