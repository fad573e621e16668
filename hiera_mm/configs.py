"""Where hiera_mm's config files are, in a checkout and in an installed wheel.

A wheel ships them under ``hiera_mm/.mim/configs`` (where mmengine looks for a package's
configs); an editable install or a checkout reads ``configs/`` beside the package. Use:

    python -m hiera_mm.configs                      # the folder
    python -m hiera_mm.configs mask_rcnn/mask-rcnn_hiera-t_fpn_1x_coco.py   # one file's path
    python -m hiera_mm.configs --list               # every config

e.g. ``python $MMDET_TOOLS/train.py $(python -m hiera_mm.configs mask_rcnn/...)``, or in one's
own config ``_base_ = '<that path>'``. (mmengine 0.10 resolves ``pkg::path`` bases only for the
OpenMMLab packages in its own table, with a registry scope of that name, so ``hiera_mm::`` is not
offered.)
"""
from __future__ import annotations

import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def config_dir() -> str:
    """The folder holding hiera_mm's configs."""
    for candidate in (os.path.join(_PACKAGE_DIR, '.mim', 'configs'),
                      os.path.join(os.path.dirname(_PACKAGE_DIR), 'configs')):
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(f'no configs beside {_PACKAGE_DIR}: reinstall hiera_mm '
                            '(pip install hiera_mm[mmdet]) or use a checkout')


def config_path(name: str) -> str:
    """Absolute path of the config ``name`` (relative to the configs folder, e.g.
    ``mask_rcnn/mask-rcnn_hiera-t_fpn_1x_coco.py``; a leading ``hiera_mm::`` is allowed)."""
    name = name.split('::', 1)[1] if name.startswith('hiera_mm::') else name
    path = os.path.join(config_dir(), name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no config '{name}' in {config_dir()}; "
                                'list them with `python -m hiera_mm.configs --list`')
    return path


def list_configs() -> list[str]:
    """Every config that is not a base, relative to the configs folder."""
    root = config_dir()
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(('_', '.')))
        found += [os.path.relpath(os.path.join(folder, f), root)
                  for f in sorted(files) if f.endswith(('.py', '.yaml')) and f != '__init__.py']
    return found


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(config_dir())
    elif args == ['--list']:
        print('\n'.join(list_configs()))
    else:
        for name in args:
            print(config_path(name))
    return 0


if __name__ == '__main__':
    sys.exit(main())
