#!/usr/bin/env python
"""Predict with a Detectron2 LazyConfig detector (Hiera backbone) and draw the results.

Each input image is resized as the config's test loader resizes it, run through the model, and
drawn with Detectron2's ``Visualizer`` (boxes, masks, class names and scores above a threshold)
into ``--output``::

    python tools/detectron2/demo.py --config-file configs/detectron2/mask_rcnn_hiera_b_100ep.py \\
        --weights output/model_final.pth --input images/*.jpg --output vis/
    # a model trained on your own data: class names from its registered dataset ...
    python tools/detectron2/demo.py --config-file ... --weights ... --input img.png --output vis/ \\
        --register mydata_val val.json images/ --metadata mydata_val
    # ... or given directly
    python tools/detectron2/demo.py ... --classes circle triangle rectangle

``--input`` takes image files, folders (every image inside) and glob patterns. Trailing
``key=value`` arguments override the config (``train.device=cpu`` on a machine without a GPU).
Predictions are also written as JSON (``--save-json``): boxes (x1, y1, x2, y2), scores, classes.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import os.path as osp

import numpy as np
import torch
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import detection_utils
from detectron2.data import transforms as T
from detectron2.utils.logger import setup_logger
from detectron2.utils.visualizer import ColorMode, Visualizer

from hiera_mm.detectron2 import HieraCheckpointer
from hiera_mm_tools import d2_runner

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
logger = logging.getLogger('detectron2')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config-file', required=True, metavar='FILE',
                   help='LazyConfig file (or the name of one shipped with hiera_mm)')
    p.add_argument('--weights', default=None,
                   help='checkpoint to load (default: the config\'s train.init_checkpoint)')
    p.add_argument('--input', nargs='+', required=True,
                   help='image files, folders or glob patterns')
    p.add_argument('--output', required=True, help='folder for the drawn images')
    p.add_argument('--confidence-threshold', type=float, default=0.5,
                   help='draw predictions scoring at least this')
    p.add_argument('--metadata', default=None,
                   help='dataset whose class names label the drawing (default: the config\'s '
                        'dataloader.test.dataset.names)')
    p.add_argument('--classes', nargs='+', default=None,
                   help='class names in category order (instead of a dataset\'s)')
    p.add_argument('--register', nargs=3, action='append', default=[],
                   metavar=('NAME', 'JSON', 'IMAGE_ROOT'), help=d2_runner.REGISTER_HELP)
    p.add_argument('--save-json', action='store_true',
                   help='also write <image>.json with the predictions next to each drawing')
    p.add_argument('opts', nargs=argparse.REMAINDER, default=[],
                   help='config overrides, path.key=value')
    return p.parse_args(argv)


def list_images(patterns) -> list[str]:
    found = []
    for pattern in patterns:
        if osp.isdir(pattern):
            found += sorted(osp.join(pattern, f) for f in os.listdir(pattern)
                            if f.lower().endswith(IMAGE_EXTENSIONS))
        elif osp.isfile(pattern):
            found.append(pattern)
        else:
            found += sorted(f for f in glob.glob(pattern) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not found:
        raise FileNotFoundError(f'no images found in {patterns}')
    return found


def get_metadata(cfg, args):
    if args.classes:
        meta = MetadataCatalog.get('__hiera_mm_demo__')
        meta.thing_classes = list(args.classes)
        return meta
    name = args.metadata or cfg.dataloader.test.dataset.names
    name = name if isinstance(name, str) else name[0]
    meta = MetadataCatalog.get(name)
    if not hasattr(meta, 'thing_classes') and name in DatasetCatalog.list():
        DatasetCatalog.get(name)  # a COCO-json dataset sets its class names when loaded
    if not hasattr(meta, 'thing_classes'):
        logger.warning(f"dataset '{name}' has no class names: drawing class ids "
                       '(use --classes or --register/--metadata)')
    return meta


class Predictor:
    """The config's model in eval mode with the test loader's resizing, one image at a time."""

    def __init__(self, cfg, weights: str):
        self.model = instantiate(cfg.model).to(cfg.train.device).eval()
        HieraCheckpointer(self.model).load(weights)
        self.augment = T.AugmentationList(
            [instantiate(a) for a in cfg.dataloader.test.mapper.augmentations])
        self.input_format = cfg.model.input_format

    @torch.no_grad()
    def __call__(self, image: np.ndarray):
        """``image``: HxWx3 in the model's input format -> Detectron2 ``Instances`` in image
        coordinates."""
        aug_input = T.AugInput(image)
        self.augment(aug_input)
        tensor = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
        inputs = {'image': tensor, 'height': image.shape[0], 'width': image.shape[1]}
        return self.model([inputs])[0]['instances'].to('cpu')


def main(argv=None) -> list[str]:
    args = parse_args(argv)
    setup_logger(name='detectron2')
    setup_logger(name='fvcore')
    d2_runner.register_datasets(args.register)
    cfg = d2_runner.load_config(args.config_file, args.opts)
    d2_runner.check_device(cfg)
    weights = args.weights if args.weights is not None else cfg.train.init_checkpoint
    if not weights:
        logger.warning('no --weights and no train.init_checkpoint: predicting with random weights')
    predictor = Predictor(cfg, weights)
    metadata = get_metadata(cfg, args)
    os.makedirs(args.output, exist_ok=True)

    written = []
    for path in list_images(args.input):
        image = detection_utils.read_image(path, format=predictor.input_format)
        instances = predictor(image)
        keep = instances[instances.scores >= args.confidence_threshold]
        rgb = image if predictor.input_format == 'RGB' else image[:, :, ::-1]
        drawing = Visualizer(rgb, metadata, scale=1.0, instance_mode=ColorMode.IMAGE)
        picture = drawing.draw_instance_predictions(keep).get_image()
        stem = osp.splitext(osp.basename(path))[0]
        out = osp.join(args.output, stem + '.png')
        detection_utils.Image.fromarray(picture).save(out)
        written.append(out)
        if args.save_json:
            with open(osp.join(args.output, stem + '.json'), 'w') as f:
                json.dump(dict(image=path, score_threshold=args.confidence_threshold,
                               boxes=keep.pred_boxes.tensor.tolist(),
                               scores=keep.scores.tolist(),
                               classes=keep.pred_classes.tolist()), f)
        logger.info(f'{path}: {len(keep)} of {len(instances)} predictions drawn -> {out}')
    return written


if __name__ == '__main__':
    main()
