"""Which OpenMMLab framework a config is written for, and reading a config the way the tools do.

``framework_of`` is the one answer every tool uses (train / test / export / swap): a config is
MMDetection's or MMSegmentation's by its ``mmdet::`` / ``mmseg::`` name, else by its
``default_scope``; anything else is refused with the fix.
"""
from __future__ import annotations

import os.path as osp
import tempfile

#: the frameworks the tools run, each a ``default_scope`` value and a config-name prefix
FRAMEWORKS = ('mmdet', 'mmseg')


def read_config(config: str):
    """The merged config of a path or a ``package::folder/name.py`` string, without importing its
    ``custom_imports`` (reading needs none of them, e.g. mmpretrain for a ConvNeXt backbone).

    A ``package::`` string is read through a temporary file inheriting it: mmengine resolves such
    names in ``_base_`` but not as the file itself."""
    from mmengine.config import Config

    if '::' not in config and not osp.isfile(config):
        raise FileNotFoundError(f'config {config} not found')
    base = config if '::' in config else osp.abspath(config)
    with tempfile.TemporaryDirectory() as tmp:
        probe = osp.join(tmp, 'swap_probe.py')
        with open(probe, 'w') as f:
            f.write(f'_base_ = {base!r}\n')
        return Config.fromfile(probe, import_custom_modules=False)


def framework_of(config_or_cfg, cfg=None) -> str:
    """'mmdet' or 'mmseg': the framework a config is written for.

    Args:
        config_or_cfg: a config path, a ``'mmdet::...'`` / ``'mmseg::...'`` name, or an already
            read mmengine ``Config`` (or any mapping with ``get``).
        cfg: the config read from ``config_or_cfg`` when the caller has it (saves reading the
            file again); ignored when ``config_or_cfg`` is itself a config.

    The ``mmdet::`` / ``mmseg::`` prefix decides; otherwise the merged config's ``default_scope``
    (every MMDetection 3.x / MMSegmentation 1.x config inherits one from its
    ``default_runtime.py``).

    Raises:
        ValueError: the config names neither framework (another ``default_scope``, or none); the
            message names the fix: set ``default_scope``, or inherit an ``mmdet::`` / ``mmseg::``
            config.
    """
    if isinstance(config_or_cfg, str):
        name = config_or_cfg
        prefix = name.split('::', 1)[0] if '::' in name else None
        if prefix in FRAMEWORKS:
            return prefix
        cfg = read_config(name) if cfg is None else cfg
    else:
        cfg = config_or_cfg
        name = getattr(cfg, 'filename', None) or 'the config'
    scope = cfg.get('default_scope', None)
    if scope in FRAMEWORKS:
        return scope
    found = f'default_scope {scope!r}' if scope is not None else 'no default_scope'
    raise ValueError(
        f'{name} has {found}: the hiera_mm tools run MMDetection and MMSegmentation configs '
        "only. Add default_scope = 'mmdet' (or 'mmseg') to it, or inherit a config of that "
        "framework (e.g. _base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py').")


__all__ = ['FRAMEWORKS', 'framework_of', 'read_config']
