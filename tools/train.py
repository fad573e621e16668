#!/usr/bin/env python
"""Train a detector or a segmentor with a Hiera backbone (the command line of MMDetection 3.3's
and MMSegmentation 1.2's tools/train.py).

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--amp-dtype {float16,bfloat16}]
                          [--auto-scale-lr]
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

from hiera_mm_tools.runner import add_common_args, build_runner, finish_args, load_config

AMP_DTYPES = ('float16', 'bfloat16')  # AmpOptimWrapper's dtype names for autocast


def parse_args(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description='Train a detector or a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training (AmpOptimWrapper with '
                             'a dynamic loss scale; fp16 unless --amp-dtype says otherwise)')
    parser.add_argument('--amp-dtype', choices=AMP_DTYPES, default=None,
                        help='the autocast dtype of AMP training (implies --amp); bfloat16 '
                             'needs a GPU that supports it (Ampere or newer)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual / base batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint; without a path, from the latest '
                             'checkpoint in the work dir')
    add_common_args(parser, work_dir_help='the dir to save logs and models')
    return finish_args(parser.parse_args(argv))


def enable_amp(cfg, dtype=None):
    """Switch the optimizer wrapper to ``AmpOptimWrapper`` with a dynamic loss scale (as mmdet's
    and mmseg's ``--amp`` do); ``dtype`` ('float16' / 'bfloat16') sets the autocast dtype (None:
    mmengine's default, float16 on CUDA), also where the config already trains with AMP."""
    from mmengine.logging import print_log
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if dtype is not None:
        if dtype not in AMP_DTYPES:
            raise ValueError(f'AMP dtype {dtype!r} is not one of {AMP_DTYPES}')
        cfg.optim_wrapper.dtype = dtype
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
    if args.amp or args.amp_dtype:
        enable_amp(cfg, args.amp_dtype)
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


def check_amp_device(cfg):
    """Refuse AMP early, with the fix, on a machine where mmengine's ``AmpOptimWrapper`` cannot
    be built (it asserts a CUDA, NPU, MLU or MUSA device; there is no CPU AMP in mmengine)."""
    if cfg.optim_wrapper.get('type', 'OptimWrapper') != 'AmpOptimWrapper':
        return
    from mmengine import device
    if any(getattr(device, f'is_{d}_available', lambda: False)()
           for d in ('cuda', 'npu', 'mlu', 'musa')):
        return
    raise RuntimeError(
        'AMP training (optim_wrapper.type=AmpOptimWrapper, set by --amp/--amp-dtype or by the '
        'config) needs a GPU (CUDA; or an NPU, MLU or MUSA device) and none is visible here. Run '
        'on a GPU, or train in fp32 on the CPU: drop --amp/--amp-dtype, and for a config that '
        'sets AMP itself add --cfg-options optim_wrapper.type=OptimWrapper')


def main(argv=None):
    args = parse_args(argv)
    cfg = config_from_args(args)
    check_amp_device(cfg)
    runner = build_runner(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    main()
