"""What the Detectron2 tools (``tools/detectron2/train_net.py``, ``demo.py``, ``export_model.py``)
share: finding a config, registering COCO-format datasets, and the CPU / GPU decisions
Detectron2's tools leave to their configs."""
from __future__ import annotations

import os.path as osp

REGISTER_HELP = (
    'register a COCO-format dataset (instances JSON + image folder) under NAME before the config '
    'is used, in every process; repeat for each split, then point the config at the names, e.g. '
    'dataloader.train.dataset.names=NAME_train dataloader.test.dataset.names=NAME_val '
    'model.roi_heads.num_classes=K')


def resolve_config(path: str) -> str:
    """The config file ``path``; if there is none, the config of that name shipped with hiera_mm
    (``detectron2/mask_rcnn_hiera_b_100ep.py`` or just ``mask_rcnn_hiera_b_100ep.py``), which is
    how a ``pip install``-ed hiera_mm is used without a checkout."""
    if osp.isfile(path):
        return path
    from hiera_mm import configs

    tried = [path]
    for name in (path, osp.join('detectron2', path)):
        try:
            return configs.config_path(name)
        except FileNotFoundError:
            tried.append(osp.join(configs.config_dir(), name))
    raise FileNotFoundError(f"no config file {path!r} (tried: {', '.join(tried)}); "
                            'list the shipped ones with `python -m hiera_mm.configs --list`')


def load_config(path: str, overrides=()):
    """LazyConfig ``path`` (see ``resolve_config``) with ``key=value`` overrides applied."""
    from detectron2.config import LazyConfig

    path = resolve_config(path)
    if not path.endswith('.py'):
        raise ValueError(f'{path}: this tool takes LazyConfig (.py) files. A yacs .yaml '
                         'config (configs/detectron2/yacs/) is read with '
                         "hiera_mm.detectron2.get_hiera_cfg() and trained with Detectron2's "
                         'DefaultTrainer')
    cfg = LazyConfig.load(path)
    return LazyConfig.apply_overrides(cfg, list(overrides or []))


def register_datasets(specs) -> list[str]:
    """Register each ``(name, json_file, image_root)`` as a COCO instances dataset.

    Idempotent for the same files (a second registration of a name with other files fails, as
    Detectron2's catalog does). Returns the names.
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    names = []
    for name, json_file, image_root in specs or ():
        json_file, image_root = osp.abspath(json_file), osp.abspath(image_root)
        for what, path, check in (('annotation file', json_file, osp.isfile),
                                  ('image folder', image_root, osp.isdir)):
            if not check(path):
                raise FileNotFoundError(f'--register {name}: {what} {path} does not exist')
        if name in DatasetCatalog.list():
            meta = MetadataCatalog.get(name)
            if getattr(meta, 'json_file', None) != json_file:
                raise ValueError(f"dataset '{name}' is already registered (with "
                                 f"{getattr(meta, 'json_file', 'other data')}); pick another name")
        else:
            register_coco_instances(name, {}, json_file, image_root)
        names.append(name)
    return names


def on_cpu(cfg) -> bool:
    return str(cfg.train.device).split(':')[0] == 'cpu'


def check_device(cfg) -> None:
    """Fail early, with the fix, when the config asks for CUDA on a machine without it."""
    import torch

    if not on_cpu(cfg) and not torch.cuda.is_available():
        raise RuntimeError(f'train.device={cfg.train.device!r} but CUDA is not available here; '
                           'add train.device=cpu to the command to run on the CPU')
