#!/usr/bin/env python
"""Export a Detectron2 R-CNN with a Hiera backbone (Mask R-CNN: boxes, classes, scores, masks) to
ONNX or TorchScript, check the export against PyTorch, and optionally evaluate it.

The whole model is traced through ``detectron2.export.TracingAdapter`` on one sample image. The
exported graph takes one image: a float32 ``(3, H, W)`` tensor on the 0-255 scale, in the model's
input format (RGB for the shipped configs), already resized as the config's test loader resizes
(any H and W: padding to the backbone's multiple of 32 and the normalisation happen inside). It
returns, in this order, the detections at the input's size (Detectron2's
``model.inference(..., do_postprocess=False)``)::

    pred_boxes    (N, 4) float32  x1, y1, x2, y2 in input pixels
    pred_classes  (N,)   int64
    pred_masks    (N, 1, M, M) float32  per-box mask probabilities (M = 28), Mask R-CNN only
    scores        (N,)   float32
    image_size    (2,)   int64    H, W of the input

Pasting the masks into the image and scaling to the original image size is Detectron2's
``detector_postprocess`` (as in its own deployment tool), done here for ``--run-eval``. The ONNX
graph uses standard operators only (onnxruntime runs it as it is); the TorchScript module calls
torchvision's ``nms`` and ``roi_align``: ``import torchvision`` before ``torch.jit.load``.

Usage::

    # ONNX (opset 17, dynamic height and width), checked with onnxruntime right away
    python tools/detectron2/export_model.py \\
        --config-file configs/detectron2/toy/mask_rcnn_hiera_t_toy.py \\
        --weights output/toy/model_final.pth --output export/onnx \\
        --register toy_coco_val data/toy_coco/annotations/instances_val.json data/toy_coco/val \\
        --run-eval                           # COCO AP of the exported model on the test set
    # TorchScript (torch.jit.trace), a sample image of one's own
    python tools/detectron2/export_model.py --format torchscript --config-file CFG \\
        --weights model_final.pth --sample-image img.jpg --output export/ts
    # a yacs config (configs/detectron2/yacs/), overrides as KEY VALUE or KEY=VALUE
    python tools/detectron2/export_model.py \\
        --config-file configs/detectron2/yacs/mask_rcnn_hiera_t_fpn_1x.yaml \\
        --weights model_final.pth --sample-image img.jpg --output export/ \\
        MODEL.ROI_HEADS.NUM_CLASSES 3

Writes ``model.onnx`` or ``model.ts`` into ``--output``, with ``export_report.json`` (format,
opset, input and output names, export time, the check's numbers) and ``log.txt``.

**The check.** The exported file is loaded back (onnxruntime on the CPU for ONNX, ``torch.jit.load``
for TorchScript) and run on the sample and on the same image resized to another height and width
(not multiples of 32; ``--check-size H W`` to choose). Each exported detection is matched to
PyTorch's (same class, nearest box); logged per size: detections of each, matched and in the same
order, max abs difference of boxes (pixels) and scores, and the IoU of the pasted masks. It
fails (exit status 1, after the files are written and any evaluation ran) when the counts or the
classes differ, a box or score differs by more than ``--atol`` or a mask IoU is below
``--min-mask-iou``.

The ONNX export uses the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) at
``--opset`` 17 by default (18 for abswin trunks); opsets below 14 are refused: the backbone's
attention is ``scaled_dot_product_attention``, which needs opset 14 (Detectron2's own
``export_model.py`` uses 11). So are 14 and 15 for R-CNNs that pool with ``ROIAlignV2``
(``aligned=True``, Detectron2's default): ONNX's RoiAlign has that half-pixel mode from opset 16,
and the boxes and masks of an opset 14 export came out wrong (up to 42 px off on the toy model).
ONNX needs ``onnx``, ``onnxruntime`` and ``onnxscript`` (``pip install onnx onnxruntime
onnxscript``). Exports are traced on ``--device`` (default cpu); a TorchScript module traced on a
GPU runs on that GPU.

The tracing, the export and the check are ``hiera_mm_tools.export.detectron2`` (the benchmark's
``d2-mask-rcnn-onnxruntime`` row exports through it too); this script reads the config and the
weights, picks the sample and writes the report.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import os.path as osp
import sys
import time
from typing import Callable, Optional

import numpy as np
import torch
from detectron2.data import DatasetCatalog, detection_utils
from detectron2.data import transforms as T
from detectron2.modeling import GeneralizedRCNN
from detectron2.utils.logger import setup_logger

import hiera_mm.detectron2  # noqa: F401  (registers the yacs backbone builders)
from hiera_mm.detectron2 import HieraCheckpointer
from hiera_mm.models.onnx import DEFAULT_OPSET, MIN_OPSET
from hiera_mm_tools import d2_runner
from hiera_mm_tools.export.detectron2 import (  # noqa: F401  (the script's names, as before)
    FORMATS, MIN_OPSET_ALIGNED_ROI, ExportedModel, check_export, check_passed, choose_model_opset,
    compare, export_onnx, export_torchscript, make_adapter, output_names, raw_inference)

logger = logging.getLogger('detectron2')

REPORT = 'export_report.json'
EVAL_RESULTS = 'eval_results.json'
EPILOG = """examples:
  %(prog)s --config-file CFG.py --weights model_final.pth --output export/            (ONNX)
  %(prog)s --format torchscript --config-file CFG.py --weights W --output export/ --run-eval
  %(prog)s --config-file CFG.py --weights W --sample-image img.jpg --output export/ \\
      model.roi_heads.num_classes=5
  %(prog)s --config-file configs/detectron2/yacs/mask_rcnn_hiera_t_fpn_1x.yaml --weights W \\
      --sample-image img.jpg --output export/ MODEL.ROI_HEADS.NUM_CLASSES 5
overrides: path.key=value for LazyConfigs (.py), KEY VALUE or KEY=VALUE for yacs (.yaml)"""


# ----------------------------------------------------------------------------------------------
# arguments
def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config-file', required=True, metavar='FILE',
                   help='LazyConfig (.py, or the name of one shipped with hiera_mm) or yacs '
                        '(.yaml, read with hiera_mm.detectron2.get_hiera_cfg()) config')
    p.add_argument('--weights', default=None,
                   help="checkpoint to export (default: the config's train.init_checkpoint / "
                        'MODEL.WEIGHTS); anything HieraCheckpointer reads')
    p.add_argument('--format', default='onnx', choices=sorted(FORMATS),
                   help='onnx (default; model.onnx) or torchscript (model.ts, torch.jit.trace)')
    p.add_argument('--opset', type=int,
                   help=f'ONNX opset (default {DEFAULT_OPSET}, 18 for abswin trunks; at least '
                        f'{MIN_OPSET}, which scaled_dot_product_attention needs, and '
                        f"{MIN_OPSET_ALIGNED_ROI} for R-CNN's aligned RoIAlign)")
    p.add_argument('--output', required=True, help='folder for the exported model and report')
    p.add_argument('--sample-image', default=None, metavar='PATH',
                   help="image to trace with (default: the first image of the config's test "
                        "dataset); resized as the config's test loader resizes")
    p.add_argument('--check-size', type=int, nargs=2, default=None, metavar=('H', 'W'),
                   help='the second size the export is checked at (default: about 0.75 x 0.9 '
                        'of the sample, not multiples of 32)')
    p.add_argument('--atol', type=float, default=1e-2,
                   help='largest allowed difference of box coordinates (pixels) and scores '
                        'between the export and PyTorch (default 1e-2)')
    p.add_argument('--min-mask-iou', type=float, default=0.98,
                   help='smallest allowed IoU between the pasted masks of the export and of '
                        'PyTorch (default 0.98)')
    p.add_argument('--run-eval', action='store_true',
                   help="evaluate the exported model on the config's test dataset (COCOEvaluator; "
                        'metrics in OUTPUT/inference/eval_results.json)')
    p.add_argument('--device', default='cpu',
                   help='device to trace on (default cpu; onnxruntime checks run on the CPU)')
    p.add_argument('--register', nargs=3, action='append', default=[],
                   metavar=('NAME', 'JSON', 'IMAGE_ROOT'), help=d2_runner.REGISTER_HELP)
    p.add_argument('opts', nargs=argparse.REMAINDER, default=[],
                   help='config overrides: path.key=value (LazyConfig) or KEY VALUE (yacs)')
    return p


def check_args(args) -> None:
    """Refuse bad arguments before anything is built (ValueError / FileNotFoundError /
    ImportError, with the fix in the message)."""
    if args.format not in FORMATS:
        raise ValueError(f"--format {args.format!r} is not supported: use one of "
                         f"{', '.join(sorted(FORMATS))}")
    if args.format == 'onnx':
        if args.opset is not None and args.opset < MIN_OPSET:
            raise ValueError(
                f'--opset {args.opset} is too old: the Hiera backbone\'s attention exports as '
                f'scaled_dot_product_attention, which needs ONNX opset {MIN_OPSET} or newer '
                f"(Detectron2's own tools/deploy/export_model.py uses 11); use --opset "
                f'{DEFAULT_OPSET} (the default)')
        missing = [m for m in ('onnx', 'onnxruntime') if not _importable(m)]
        if missing:
            raise ImportError(f"--format onnx needs {' and '.join(missing)}: pip install onnx "
                              'onnxruntime onnxscript (or use --format torchscript)')
    if args.weights and not _is_url(args.weights) and not osp.exists(args.weights):
        raise FileNotFoundError(f'--weights {args.weights}: no such file or folder')
    if args.sample_image and not osp.isfile(args.sample_image):
        raise FileNotFoundError(f'--sample-image {args.sample_image}: no such file')
    if args.check_size and min(args.check_size) < 32:
        raise ValueError(f'--check-size {args.check_size}: height and width must be >= 32')
    if not (0.0 <= args.min_mask_iou <= 1.0) or args.atol < 0:
        raise ValueError('--min-mask-iou must be within [0, 1] and --atol >= 0')


def parse_args(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    try:
        check_args(args)
    except (ValueError, FileNotFoundError, ImportError) as err:
        parser.error(str(err))  # exit status 2, the message on stderr
    return args


def _importable(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def _is_url(path: str) -> bool:
    return '://' in path


# ----------------------------------------------------------------------------------------------
# config -> model, test-time resizing, test data
@dataclasses.dataclass
class Setup:
    """What the exporter needs from a config, LazyConfig or yacs alike."""
    model: torch.nn.Module
    weights: str
    augmentations: list  # the test loader's resizing
    test_dataset: Optional[str]
    build_test_loader: Callable[[], object]
    build_evaluator: Callable[[str], object]  # output_dir -> evaluator


def _yacs_overrides(opts) -> list[str]:
    """``KEY VALUE`` pairs; ``KEY=VALUE`` items are split, so both spellings work."""
    out = []
    for item in opts or ():
        out += item.split('=', 1) if '=' in item and not item.startswith('=') else [item]
    if len(out) % 2:
        raise ValueError(f'yacs overrides come as KEY VALUE pairs, got {opts}')
    return out


def _coco_evaluator(dataset: str, output_dir: str):
    from detectron2.evaluation import COCOEvaluator
    return COCOEvaluator(dataset, output_dir=output_dir)


def lazy_setup(path: str, opts, device: str) -> Setup:
    from detectron2.config import instantiate

    cfg = d2_runner.load_config(path, opts)
    model = instantiate(cfg.model).to(device).eval()
    names = cfg.dataloader.test.dataset.names
    dataset = names if isinstance(names, str) else (list(names) or [None])[0]

    def build_evaluator(output_dir):
        if 'evaluator' not in cfg.dataloader:
            return _coco_evaluator(dataset, output_dir)
        cfg.dataloader.evaluator.output_dir = output_dir
        return instantiate(cfg.dataloader.evaluator)

    return Setup(model=model, weights=cfg.train.get('init_checkpoint', '') or '',
                 augmentations=[instantiate(a) for a in cfg.dataloader.test.mapper.augmentations],
                 test_dataset=dataset,
                 build_test_loader=lambda: instantiate(cfg.dataloader.test),
                 build_evaluator=build_evaluator)


def yacs_setup(path: str, opts, device: str) -> Setup:
    from detectron2.data import build_detection_test_loader
    from detectron2.modeling import build_model

    from hiera_mm.detectron2 import get_hiera_cfg

    cfg = get_hiera_cfg()
    cfg.merge_from_file(path)
    cfg.merge_from_list(_yacs_overrides(opts))
    cfg.MODEL.DEVICE = device
    cfg.freeze()
    dataset = cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else None
    return Setup(model=build_model(cfg).eval(), weights=cfg.MODEL.WEIGHTS,
                 augmentations=[T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2,
                                                     cfg.INPUT.MAX_SIZE_TEST)],
                 test_dataset=dataset,
                 build_test_loader=lambda: build_detection_test_loader(cfg, dataset),
                 build_evaluator=lambda output_dir: _coco_evaluator(dataset, output_dir))


def load_setup(config_file: str, opts=(), device: str = 'cpu') -> Setup:
    """The model (eval mode, on ``device``, not yet loaded) and test-time pieces of a LazyConfig
    (``.py``) or yacs (``.yaml`` / ``.yml``) config."""
    path = d2_runner.resolve_config(config_file)
    setup = (yacs_setup if path.endswith(('.yaml', '.yml')) else lazy_setup)(path, opts, device)
    if not isinstance(setup.model, GeneralizedRCNN):
        raise ValueError(f'{config_file}: the model is a {type(setup.model).__name__}; this '
                         'exporter handles GeneralizedRCNN (Mask / Faster / Cascade R-CNN)')
    return setup


# ----------------------------------------------------------------------------------------------
# inputs
def read_image(path: str, input_format: str) -> np.ndarray:
    return detection_utils.read_image(path, format=input_format)


def model_input(image: np.ndarray, augmentations) -> dict:
    """HxWxC image -> Detectron2 input dict: the resized image as float32 (C, H, W), plus the
    original ``height`` and ``width``."""
    aug_input = T.AugInput(image)
    T.AugmentationList(list(augmentations))(aug_input)
    tensor = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
    return {'image': tensor.float(), 'height': image.shape[0], 'width': image.shape[1]}


def other_size(height: int, width: int) -> tuple[int, int]:
    """A second size to check at: about 0.75 x 0.9 of ``(height, width)`` (smaller, so that a
    fixed square canvas still holds it; another aspect ratio), never a multiple of 32."""
    def off32(n):
        return n + 5 if n % 32 == 0 else n
    return off32(max(32, round(height * 0.75))), off32(max(32, round(width * 0.9)))


def resized(image: np.ndarray, height: int, width: int) -> dict:
    """The whole image resized to exactly ``height`` x ``width`` as a model input."""
    tfm = T.ResizeTransform(image.shape[0], image.shape[1], height, width)
    tensor = torch.as_tensor(np.ascontiguousarray(tfm.apply_image(image).transpose(2, 0, 1)))
    return {'image': tensor.float(), 'height': image.shape[0], 'width': image.shape[1]}


def first_test_image(setup: Setup) -> str:
    name = setup.test_dataset
    try:
        if not name:
            raise KeyError('the config names no test dataset')
        dicts = DatasetCatalog.get(name)
        return dicts[0]['file_name']
    except Exception as err:  # an unregistered name, missing files, an empty dataset
        raise RuntimeError(
            f"no --sample-image and the config's test dataset {name!r} cannot be read "
            f"({type(err).__name__}: {err}); give --sample-image PATH, or register the dataset "
            '(--register NAME JSON IMAGE_ROOT)') from err


# ----------------------------------------------------------------------------------------------
def evaluate(setup: Setup, exported: ExportedModel, output_dir: str) -> dict:
    """COCO evaluation of the exported model on the config's test dataset."""
    from detectron2.evaluation import inference_on_dataset, print_csv_format

    logger.info(f'evaluating the exported model on {setup.test_dataset!r} ...')
    inference_dir = osp.join(output_dir, 'inference')
    os.makedirs(inference_dir, exist_ok=True)
    metrics = inference_on_dataset(exported, setup.build_test_loader(),
                                   setup.build_evaluator(inference_dir))
    print_csv_format(metrics)
    with open(osp.join(inference_dir, EVAL_RESULTS), 'w') as f:
        json.dump(metrics, f, indent=1)
    return metrics


def export(setup: Setup, args) -> dict:
    """Export ``setup.model`` as ``args`` say; returns the report (also written as JSON)."""
    if args.format not in FORMATS:
        raise ValueError(f"format {args.format!r} is not supported: use one of "
                         f"{', '.join(sorted(FORMATS))}")
    model = setup.model
    sample_path = args.sample_image or first_test_image(setup)
    image = read_image(sample_path, model.input_format)
    sample = model_input(image, setup.augmentations)
    height, width = sample['image'].shape[-2:]
    check_hw = tuple(args.check_size) if args.check_size else other_size(height, width)
    logger.info(f'sample image {sample_path} ({image.shape[0]}x{image.shape[1]}), model input '
                f'{height}x{width}; checking also at {check_hw[0]}x{check_hw[1]}')

    tensor = sample['image'].to(args.device)
    adapter = make_adapter(model, tensor)
    flat = adapter(tensor)  # PyTorch's outputs at the sample size; sets outputs_schema
    reference = adapter.outputs_schema(flat)[0]['instances']
    names = output_names(adapter, len(flat))

    os.makedirs(args.output, exist_ok=True)
    path = osp.join(args.output, FORMATS[args.format])
    start = time.perf_counter()
    if args.format == 'onnx':
        export_onnx(adapter, tensor, path, args.opset, names)
    else:
        export_torchscript(adapter, tensor, path)
    seconds = time.perf_counter() - start
    size_mb = osp.getsize(path) / 2 ** 20
    logger.info(f'exported {path} ({size_mb:.1f} MB) in {seconds:.1f} s; outputs: '
                f"{', '.join(names)}")

    exported = ExportedModel(path, args.format, adapter.outputs_schema, device=args.device)
    samples = [sample, resized(image, *check_hw)]
    checks = check_export(model, exported, samples, args.atol, args.min_mask_iou,
                          references=[reference, None])
    report = dict(format=args.format, file=path,
                  opset=args.opset if args.format == 'onnx' else None,
                  export_seconds=round(seconds, 2), size_mb=round(size_mb, 2),
                  sample_image=sample_path,
                  input=dict(name='image', shape=['3', 'height', 'width'], dtype='float32',
                             format=model.input_format),
                  outputs=names, checks=checks, check_passed=all(c['passed'] for c in checks),
                  atol=args.atol, min_mask_iou=args.min_mask_iou)
    if args.run_eval:
        report['eval'] = evaluate(setup, exported, args.output)
    with open(osp.join(args.output, REPORT), 'w') as f:
        json.dump(report, f, indent=1)
    return report


def main(argv=None) -> dict:
    """Export as the command line ``argv`` says; returns the report. Logs go to
    ``OUTPUT/log.txt`` (and, run as a script, to the console)."""
    args = parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    log_file = logging.FileHandler(osp.join(args.output, 'log.txt'))
    log_file.setFormatter(logging.Formatter('[%(asctime)s] %(name)s %(levelname)s: %(message)s'))
    logger.addHandler(log_file)
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
    try:
        logger.info(f'arguments: {vars(args)}')
        d2_runner.register_datasets(args.register)
        setup = load_setup(args.config_file, args.opts, args.device)
        try:
            if args.format == 'onnx':
                args.opset = choose_model_opset(setup.model, args.opset)
        except ValueError as err:
            get_parser().error(str(err))
        weights = args.weights if args.weights is not None else setup.weights
        if weights:
            HieraCheckpointer(setup.model).load(weights)
        else:
            logger.warning('no --weights and none in the config: exporting random weights')
        report = export(setup, args)
        if report['check_passed']:
            logger.info(f"the export matches PyTorch at {len(report['checks'])} sizes")
        else:
            logger.error('the export differs from PyTorch beyond the tolerances (see above)')
        return report
    finally:
        logger.removeHandler(log_file)
        log_file.close()


if __name__ == '__main__':
    setup_logger(name='detectron2')
    setup_logger(name='fvcore')
    sys.exit(0 if main()['check_passed'] else 1)
