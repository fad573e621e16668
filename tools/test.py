#!/usr/bin/env python
"""Test (and evaluate) a detector or a segmentor with a Hiera backbone (the command line of
MMDetection 3.3's and MMSegmentation 1.2's tools/test.py).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out OUT]
                         [--show] [--show-dir DIR] [--wait-time S] [--tta]
                         [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

The config says which framework runs it (its ``default_scope``, 'mmdet' or 'mmseg'); only that
one is imported. ``--out``: detection, a .pkl file of the raw predictions; segmentation, a
directory for the predicted label maps (PNG, as mmseg's test.py). ``--tta``: the config's
``tta_model`` and ``tta_pipeline`` (mmseg's dataset bases define both: multi-scale and flip).
Several processes: ``tools/dist_test.sh CONFIG CHECKPOINT N``.
"""
import argparse
import copy
import warnings

from hiera_mm_tools.frameworks import framework_of
from hiera_mm_tools.runner import add_common_args, build_runner, finish_args, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector or a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', type=str,
                        help='detection: dump the predictions to a pickle file for offline '
                             'evaluation; segmentation: save the predicted label maps in this '
                             'directory')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir',
                        help='directory where painted images will be saved; it is created '
                             'under work_dir/<timestamp>/')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation (the config's tta_model / tta_pipeline)")
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
    """Detection: wrap the model in ``tta_model`` and use ``tta_pipeline`` (defaults:
    DetTTAModel, flips)."""
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


def enable_seg_tta(cfg):
    """As mmseg's test.py: the config's ``tta_pipeline`` and ``tta_model`` (mmseg's dataset and
    runtime bases define them: six scales x flip, ``SegTTAModel``) around the model."""
    if 'tta_pipeline' not in cfg:
        raise KeyError(f'--tta: {cfg.filename} defines no tta_pipeline (mmseg\'s dataset bases '
                       'define one; a config for another dataset must add its own)')
    if 'tta_model' not in cfg:
        warnings.warn('Cannot find ``tta_model`` in config, using SegTTAModel.')
        cfg.tta_model = dict(type='SegTTAModel')
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def trigger_seg_visualization(cfg, args):
    """As mmseg's test.py: the visualization hook draws (and shows) every prediction; with
    ``--show-dir`` the visualizer saves them under ``work_dir/<timestamp>/<show-dir>``."""
    if 'visualization' not in cfg.default_hooks:
        raise RuntimeError('VisualizationHook must be included in default_hooks, e.g. '
                           "visualization=dict(type='SegVisualizationHook')")
    hook = cfg.default_hooks.visualization
    hook.draw = True
    if args.show:
        hook.show = True
        hook.wait_time = args.wait_time
    if args.show_dir:
        cfg.visualizer.save_dir = args.show_dir
    return cfg


def config_from_args(args):
    """The test config after all command-line overrides (no runner built); its framework and
    hiera_mm's integration for it are imported (registered) by then."""
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    cfg.load_from = args.checkpoint
    if framework_of(cfg) == 'mmseg':
        if args.show or args.show_dir:
            cfg = trigger_seg_visualization(cfg, args)
        if args.tta:
            enable_seg_tta(cfg)
        if args.out is not None:  # IoUMetric writes the label maps and still evaluates
            cfg.test_evaluator.output_dir = args.out
            cfg.test_evaluator.keep_results = True
        return cfg
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
    if args.out is not None and framework_of(runner.cfg) == 'mmdet':
        add_dump_metric(runner, args.out)
    return runner.test()


if __name__ == '__main__':
    main()
