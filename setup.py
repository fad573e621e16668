"""hiera_mm: Hiera as a detection backbone for MMDetection 3.x.

The pins below are the versions known to work together (see README, "Install"). mmcv must be
built with its compiled ops against the installed torch; ``make setup`` (tools/setup_env.sh)
does that once per machine and installs the cached wheel before this package, so pip never
starts an isolated mmcv build of its own.
"""
from setuptools import find_packages, setup

setup(
    name='hiera_mm',
    version='0.1.0',
    description='Hiera (Ryali et al., ICML 2023) as a detection backbone for MMDetection 3.x',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['hiera_mm', 'hiera_mm.*']),
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.1',
        'mmengine==0.10.7',
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmdet==3.3.0',
        'transformers>=4.44,<6',
        'huggingface_hub>=0.23',
        'safetensors>=0.4',
        'pycocotools>=2.0.7',
        'setuptools<82',  # mmcv and mmengine's `mmdet::` config bases import pkg_resources
        'numpy',
        'pillow',
    ],
    extras_require={
        'tests': [
            'pytest>=8',
            'pytest-timeout',
            'timm>=1.0',
            'hiera-transformer==0.1.4',
            'hydra-core>=1.3',
            'iopath>=0.1.10',
        ],
    },
)
