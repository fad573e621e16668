#!/usr/bin/env python
"""Train a detector or a segmentor with a Hiera backbone (the command line of MMDetection 3.3's
and MMSegmentation 1.2's tools/train.py).

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr]
                          [--resume [CHECKPOINT]] [--cfg-options k=v ...]
                          [--launcher {none,pytorch,slurm,mpi}]

The config says which framework runs it (its ``default_scope``, 'mmdet' or 'mmseg'); only that
one is imported. ``--resume`` alone resumes from the latest checkpoint in the work dir;
``--resume PATH`` resumes from PATH. Several processes: ``tools/dist_train.sh CONFIG N``. The
hooks a run needs come from the config (hiera_mm's configs declare them), so mmdet's or mmseg's
own tools/train.py, ``mim train`` and ``Runner.from_cfg`` give the same run; this script adds
only what a command line must do.
"""
import logging
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import add_common_args, build_runner, finish_args, load_config  # noqa: E402


def parse_args(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description='Train a detector or a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual / base batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint; without a path, from the latest '
                             'checkpoint in the work dir')
    add_common_args(parser, work_dir_help='the dir to save logs and models')
    return finish_args(parser.parse_args(argv))


def enable_amp(cfg):
    """Switch the optimizer wrapper to ``AmpOptimWrapper`` with a dynamic loss scale."""
    from mmengine.logging import print_log
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current',
                  level=logging.WARNING)
        return
    if wrapper != 'OptimWrapper':
        raise ValueError('`--amp` is only supported when the optimizer wrapper type is '
                         f'`OptimWrapper`, but got {wrapper}.')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def enable_auto_scale_lr(cfg):
    asl = cfg.get('auto_scale_lr', None)
    if not asl or 'enable' not in asl or 'base_batch_size' not in asl:
        raise RuntimeError('Can not find "auto_scale_lr" or "auto_scale_lr.enable" or '
                           '"auto_scale_lr.base_batch_size" in your configuration file.')
    cfg.auto_scale_lr.enable = True


def config_from_args(args):
    """The training config after all command-line overrides (no runner built); its framework
    and hiera_mm's integration for it are imported (registered) by then."""
    cfg = load_config(args.config, args.cfg_options, args.launcher, args.work_dir)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        enable_auto_scale_lr(cfg)
    # An explicit checkpoint wins over auto-resume from the work dir.
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    runner = build_runner(config_from_args(args))
    runner.train()
    return runner


if __name__ == '__main__':
    main()
