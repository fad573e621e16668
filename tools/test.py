#!/usr/bin/env python
"""Test (and evaluate) a detector with a Hiera backbone (command line of MMDetection 3.3's
tools/test.py).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                         [--show] [--show-dir DIR] [--wait-time S] [--tta]
                         [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Several processes: ``tools/dist_test.sh CONFIG CHECKPOINT N``.
"""
import argparse
import copy
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import (add_common_args, build_runner, finish_args,  # noqa: E402
                     import_hiera_mm, load_config)

import_hiera_mm()  # registers hiera_mm's modules, whatever the config's custom_imports say


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='MMDet test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', type=str,
                        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir',
                        help='directory where painted images will be saved; it is created '
                             'under work_dir/<timestamp>/')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (flip)')
    add_common_args(parser,
                    work_dir_help='the directory to save the file containing evaluation metrics')
    return finish_args(parser.parse_args(argv))


def _default_tta_pipeline(cfg):
    """The test pipeline with its packing step replaced by flip / no-flip test-time augmentation."""
    data_cfg = cfg.test_dataloader.dataset
    while 'dataset' in data_cfg:  # wrappers (e.g. ConcatDataset-like) nest the real dataset
        data_cfg = data_cfg['dataset']
    pipeline = copy.deepcopy(data_cfg.pipeline)
    pack = pipeline[-1]
    meta_keys = pack.get('meta_keys', ('img_id', 'img_path', 'ori_shape', 'img_shape',
                                       'scale_factor', 'flip', 'flip_direction'))
    meta_keys = tuple(meta_keys)
    for key in ('flip', 'flip_direction'):
        if key not in meta_keys:
            meta_keys += (key, )
    pipeline[-1] = dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
            [dict(type='PackDetInputs', meta_keys=meta_keys)],
        ])
    return pipeline


def enable_tta(cfg):
    """Wrap the model in ``tta_model`` and use ``tta_pipeline`` (defaults: DetTTAModel, flips)."""
    from mmengine.config import ConfigDict
    if 'tta_model' not in cfg:
        warnings.warn('Cannot find ``tta_model`` in config, using the default DetTTAModel.')
        cfg.tta_model = dict(type='DetTTAModel',
                             tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                                          max_per_img=100))
    if 'tta_pipeline' not in cfg:
        warnings.warn('Cannot find ``tta_pipeline`` in config, using the test pipeline with '
                      'horizontal flips.')
        cfg.tta_pipeline = _default_tta_pipeline(cfg)
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def config_from_args(args):
    """The test config after all command-line overrides (no runner built)."""
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        from mmdet.engine.hooks.utils import trigger_visualization_hook
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        enable_tta(cfg)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out must be a .pkl or .pickle file, got {args.out}')
    return cfg


def add_dump_metric(runner, out_file):
    """Also dump the raw predictions to ``out_file`` (a pickle) during ``runner.test()``."""
    from mmdet.evaluation import DumpDetResults
    runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=out_file))


def main(argv=None):
    args = parse_args(argv)
    runner = build_runner(config_from_args(args))
    if args.out is not None:
        add_dump_metric(runner, args.out)
    metrics = runner.test()
    return metrics


if __name__ == '__main__':
    main()
