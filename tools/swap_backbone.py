#!/usr/bin/env python
"""Write a config that puts a Hiera backbone into an MMDetection or MMSegmentation config
(inheriting it).

    python tools/swap_backbone.py CONFIG --arch tiny --out NEW.py \
        [--checkpoint CKPT] [--drop-path 0.1] [--lr LR]

CONFIG: a config path, ``mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py`` or
``mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py``. The framework comes from the config:
its ``mmseg::`` / ``mmdet::`` prefix, else its ``default_scope`` (a config naming neither is
refused with the fix).
NEW.py gets ``_base_ = CONFIG`` and only what differs (backbone, the in_channels of the neck or
heads reading it, normalisation, AdamW and paramwise settings, the framework's hiera_mm import);
it starts with comments that say what changed and why, and the same summary is printed. Configs
that cannot be adapted safely are refused with the reason (exit status 2). The rules are in
``hiera_mm_tools/swap/mmdet/`` and ``hiera_mm_tools/swap/mmseg/`` (their docstrings), on the
shared ``hiera_mm_tools/swap/``; an mmseg config imports nothing of mmdet here (nor in the config
written).
"""
import argparse
import os
import sys
import warnings


def parse_args(argv=None):
    from hiera_mm.archs import ARCH_SETTINGS

    parser = argparse.ArgumentParser(
        description='Swap the backbone of an MMDetection or MMSegmentation config for Hiera '
                    '(writes a new config inheriting it).')
    parser.add_argument('config', help="config path, 'mmdet::<folder>/<file>.py' or "
                                       "'mmseg::<folder>/<file>.py'")
    parser.add_argument('--arch', required=True, choices=sorted(ARCH_SETTINGS),
                        help='Hiera arch (SAM2 trunks need --checkpoint)')
    parser.add_argument('--out', required=True, help='path of the config to write')
    parser.add_argument('--checkpoint', default=None,
                        help='backbone weights (default: hf://facebook/hiera-<arch>-224-hf)')
    parser.add_argument('--drop-path', type=float, default=None,
                        help='drop_path_rate (default per size: tiny 0.1 ... huge 0.5)')
    parser.add_argument('--lr', type=float, default=None,
                        help='learning rate (default: see the lr rule printed)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if '::' not in args.config and os.path.abspath(args.out) == os.path.abspath(args.config):
        print('swap_backbone: --out must differ from CONFIG (the new config inherits it)',
              file=sys.stderr)
        return 2
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    from hiera_mm_tools.swap import planner

    try:
        plan = planner(args.config)(args.config, args.arch, checkpoint=args.checkpoint,
                                    drop_path_rate=args.drop_path, lr=args.lr,
                                    out_file=args.out)
    except (ValueError, FileNotFoundError) as err:
        print(f'swap_backbone: refused: {err}', file=sys.stderr)
        return 2
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(plan.text)
    print(f'Wrote {args.out} (_base_ = {plan.base!r}, arch {args.arch!r}). Decisions:')
    for decision in plan.decisions:
        print(f'  - {decision}')
    for remark in plan.remarks:
        print(f'swap_backbone: note: {remark}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
