"""hiera_mm: Hiera (Ryali et al., ICML 2023) as a backbone for MMDetection 3.x, MMSegmentation 1.x
and Detectron2.

The core (the model and the checkpoint code) needs torch only; each framework's integration is
an extra, so that a user of one framework installs nothing of another:

    pip install 'hiera_mm[mmdet]'    # into an environment that has torch and mmcv 2.1.0
    pip install 'hiera_mm[mmseg]'    # the same for MMSegmentation (its Mask2Former head: add mmdet)
    pip install hiera_mm             # Detectron2: not on PyPI, so not an extra; install it first

Every range below is one whose ends a test run exercised: the lower ends in ``.venv-oldest``,
the upper ones (exclusive, at the next minor release) in ``.venv`` (tools/setup_env.sh, README
"Tested with"). The configs ship inside the package, under ``hiera_mm/.mim/configs`` where
mmengine looks for a package's configs.
"""
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithConfigs(build_py):
    """Copy ``configs/`` into the built package as ``hiera_mm/.mim/configs`` (wheels, sdists'
    builds). An editable install reads them from the checkout (``hiera_mm.configs``)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = os.path.join(self.build_lib, 'hiera_mm', '.mim', 'configs')
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(os.path.join(ROOT, 'configs'), target,
                        ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


setup(
    name='hiera_mm',
    version='0.2.0',
    description=('Hiera (Ryali et al., ICML 2023) as a backbone for MMDetection, MMSegmentation '
                 'and Detectron2'),
    long_description=open(os.path.join(ROOT, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['hiera_mm', 'hiera_mm.*', 'hiera_mm_tools', 'hiera_mm_tools.*']),
    cmdclass={'build_py': BuildPyWithConfigs},
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.1.2,<2.15',
        'huggingface_hub>=0.23',
        'safetensors>=0.4',
    ],
    extras_require={
        'mmdet': [
            'mmengine>=0.10.0,<0.11',
            'mmcv>=2.1.0,<2.2',
            'mmdet>=3.3.0,<3.4',
            'pycocotools>=2.0.7',
            'setuptools<82',  # mmcv and mmengine's `mmdet::` config bases import pkg_resources
        ],
        'mmseg': [
            'mmengine>=0.10.0,<0.11',
            'mmcv>=2.1.0,<2.2',
            'mmsegmentation>=1.2.2,<1.3',
            'ftfy',  # mmseg 1.2 imports these without declaring them
            'regex',
            'setuptools<82',
        ],
        # Deployment: torch.onnx's exporters and the runtime the exports are checked with.
        'deploy': [
            'onnx>=1.13',
            'onnxruntime>=1.15',
            'onnxscript>=0.1',
        ],
        'tests': [
            'transformers>=4.45.0,<5.25',  # parity reference; older ones resize position embeddings otherwise
            'pytest>=8',
            'pytest-timeout',
            'pytest-xdist>=3.7',  # make test: --dist loadfile --no-loadscope-reorder
            'timm>=1.0',
            'hiera-transformer==0.1.4',
            'hydra-core>=1.3',
            # sam2 (a test reference) declares iopath>=0.1.10 but runs with 0.1.9, which
            # Detectron2 pins (<0.1.10): one environment holds both.
            'iopath>=0.1.9',
        ],
    },
)
