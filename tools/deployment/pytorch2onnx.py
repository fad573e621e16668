#!/usr/bin/env python
"""Export a segmentor or a detector with a Hiera backbone to ONNX, and check it with onnxruntime.

    python tools/deployment/pytorch2onnx.py CONFIG [--checkpoint CKPT] [--shape H W]
        [--batch N] [--output FILE.onnx] [--opset N] [--verify-shape H W] [--image IMG]
        [--no-verify] [--eval [N]] [--seg-output {both,logits,labels}] [--cfg-options k=v ...]

torch.onnx's TorchScript-based exporter (``dynamo=False``), dynamic batch, height and width.
The config's ``default_scope`` picks the framework:

* MMSegmentation: the whole segmentor; input ``input`` (N x 3 x H x W float32, the image as the
  test pipeline delivers it: BGR as mmcv loads it, 0-255), outputs ``logits`` (N x classes x H x
  W) and ``labels`` (N x 1 x H x W, int64), normalisation and padding as the config's data
  preprocessor does them inside the graph;
* MMDetection: backbone and neck (``extract_feat``, normalisation and padding inside): outputs
  ``feat0`` ... one per level. The detection heads' post-processing (NMS, RoI ops) is not part
  of it (mmdeploy's rewrites are what exports a whole detector).

The check runs onnxruntime at the export size and at a second size that is no multiple of 32
(``--verify-shape``, batch 2), compares with the framework's own PyTorch inference and prints
the max abs errors (and for segmentation the fraction of equal labels); it fails (exit 1) when
an error exceeds ``--tolerance`` x max(1, max |PyTorch output|) or fewer than
``--min-label-agreement`` of the labels agree. ``--eval`` also evaluates both on the config's
test set with its evaluator (segmentation: mIoU of PyTorch and of the ONNX model).
"""
import argparse
import os
import os.path as osp
import sys

from hiera_mm_tools.frameworks import framework_of
from hiera_mm_tools.runner import CFG_OPTIONS_HELP, load_config


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Export an mmseg segmentor or an mmdet detector\'s backbone and neck to '
                    'ONNX (dynamic batch and size) and check it against PyTorch')
    parser.add_argument('config', help='config file (mmseg or mmdet, by its default_scope)')
    parser.add_argument('--checkpoint', help='checkpoint file; without it the weights are '
                        'random (a dry run of the export)')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'),
                        help='input height and width to export at (default 512 512); the graph '
                             'takes other sizes too')
    parser.add_argument('--batch', type=int, default=1, help='batch size to export at')
    parser.add_argument('--output', help='ONNX file to write (default: <config name>.onnx)')
    parser.add_argument('--opset', type=int, help='ONNX opset (>= 14; default 17, or 18 for '
                        "abswin trunks, whose position embedding resizes with antialiasing)")
    parser.add_argument('--seg-output', choices=['both', 'logits', 'labels'], default='both',
                        help='segmentation: the graph\'s outputs (default both)')
    parser.add_argument('--no-verify', action='store_true',
                        help='do not run onnxruntime and compare with PyTorch')
    parser.add_argument('--verify-shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='the second size to check at (default: about 3/4 of --shape, '
                             'no multiple of 32), with a batch of 2')
    parser.add_argument('--image', help='image to check with (resized to each size); default '
                        'synthetic images')
    parser.add_argument('--tolerance', type=float, default=1e-3,
                        help='largest max abs error allowed, relative to max(1, max |output|)')
    parser.add_argument('--min-label-agreement', type=float, default=0.999,
                        help='segmentation: smallest fraction of equal labels allowed')
    parser.add_argument('--eval', type=int, nargs='?', const=0, metavar='N',
                        help='segmentation: also evaluate PyTorch and the ONNX model on the '
                             "config's test set (the first N images) with its test_evaluator")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help=CFG_OPTIONS_HELP)
    args = parser.parse_args(argv)
    for name, shape in (('--shape', args.shape), ('--verify-shape', args.verify_shape)):
        if shape is not None and min(shape) < 1:
            parser.error(f'{name} {shape[0]} {shape[1]}: height and width must be positive')
    if args.batch < 1:
        parser.error(f'--batch {args.batch}: must be at least 1')
    if args.opset is not None and args.opset < 14:
        parser.error(f'--opset {args.opset}: Hiera\'s attention (scaled_dot_product_attention) '
                     'exports from opset 14 on')
    if not osp.isfile(args.config):
        parser.error(f'config {args.config} not found')
    if args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint} not found')
    if args.image and not osp.isfile(args.image):
        parser.error(f'image {args.image} not found')
    if args.eval is not None and args.no_verify:
        parser.error('--eval runs onnxruntime: drop --no-verify')
    if args.eval is not None and args.seg_output == 'labels':
        parser.error('--eval resizes the logits to each original image size as mmseg does: '
                     '--seg-output both or logits')
    return args


def default_verify_shape(height, width):
    """About 3/4 of the export size and no multiple of 32, in another number of 32-pixel units
    (so that a graph which pads to 32 meets other sizes inside too): 128 -> 167, 512 -> 391."""
    def pick(n):
        m = max(33, n * 3 // 4 + 7)
        if -(-m // 32) == -(-n // 32):
            m = n + 39
        return m + 1 if m % 32 == 0 else m
    return pick(height), pick(width)


def build_model(cfg, checkpoint):
    from mmengine.registry import MODELS, init_default_scope

    from hiera_mm.openmmlab.checkpoint_loader import trust_checkpoint_location
    init_default_scope(framework_of(cfg))
    model = MODELS.build(cfg.model)
    if checkpoint:
        from mmengine.runner import load_checkpoint
        trust_checkpoint_location(checkpoint)  # given by the user, as test.py's CHECKPOINT
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    else:
        # As a training run starts: the config's init (a pretrained backbone where its init_cfg
        # names one; --cfg-options model.backbone.init_cfg=None for random weights offline).
        print('no --checkpoint: the config\'s initial weights (a dry run of the export)')
        import logging

        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)  # not the init report of every parameter
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    return model.eval()


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    framework = framework_of(cfg)
    if args.eval is not None and framework != 'mmseg':
        raise SystemExit('--eval: only segmentation graphs give predictions to evaluate (the '
                         'detection graph ends at the neck)')

    from hiera_mm.models import onnx as hiera_onnx
    from hiera_mm_tools.export import openmmlab as ex
    model = build_model(cfg, args.checkpoint)
    try:
        opset = hiera_onnx.choose_opset(model, args.opset)
    except ValueError as err:
        raise SystemExit(f'--{err}: use --opset {hiera_onnx.min_opset(model)} or later')
    outputs = ex.SEG_OUTPUTS if args.seg_output == 'both' else (args.seg_output, )
    image = None
    if args.image:
        import mmcv
        image = mmcv.imread(args.image)  # H x W x 3, BGR, as the test pipeline loads it
    example = ex.sample_images(args.shape, args.batch, seed=0, image=image).float()
    graph = ex.build_graph(model, framework, outputs, example=example)
    output = args.output or osp.splitext(osp.basename(args.config))[0] + '.onnx'
    if osp.dirname(output):
        os.makedirs(osp.dirname(output), exist_ok=True)

    print(f'exporting {framework} {graph.task} of {osp.basename(args.config)} at '
          f'{args.batch}x3x{args.shape[0]}x{args.shape[1]}, opset {opset} -> {output}')
    for note in graph.notes:
        print(f'  note: {note}')
    info = ex.export_onnx(graph, example, output, opset=opset)
    print(f'exported in {info["seconds"]:.1f} s, {info["bytes"] / 2**20:.1f} MiB; outputs '
          f'{", ".join(graph.output_names)}; dynamic: batch, height, width')
    if info['tracer_warnings']:
        print(f'  {len(info["tracer_warnings"])} places where the trace fixed a Python value '
              '(harmless if the checks below pass at the other size):')
        for w in info['tracer_warnings'][:8]:
            print(f'    {w}')
    try:
        import onnx
        onnx.checker.check_model(output)
    except ImportError:
        pass
    if args.no_verify:
        return 0

    session = ex.onnxruntime_session(output)
    verify = tuple(args.verify_shape or default_verify_shape(*args.shape))
    failed = False
    for shape, batch, seed in ((tuple(args.shape), args.batch, 1), (verify, 2, 2)):
        images = ex.sample_images(shape, batch, seed=seed, image=image)
        comp = ex.compare_with_pytorch(session, model, framework, images)
        good = comp.ok(args.tolerance, args.min_label_agreement)
        failed |= not good
        print(f'check {"OK" if good else "FAILED"}: {comp.line()}')
    if args.eval is not None:
        torch_metrics, onnx_metrics, agreement, n = ex.evaluate_segmentation(
            cfg, model, session, max_images=args.eval or None)
        keys = [k for k in ('mIoU', 'aAcc', 'mAcc') if k in torch_metrics] or sorted(torch_metrics)
        for k in keys:
            print(f'eval {k} on {n} test images: PyTorch {torch_metrics[k]:.2f}, ONNX '
                  f'{onnx_metrics[k]:.2f}')
        print(f'eval equal labels on {n} test images: {100 * agreement:.4f}%')
    if failed:
        print('the ONNX model differs from PyTorch beyond --tolerance / --min-label-agreement',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
