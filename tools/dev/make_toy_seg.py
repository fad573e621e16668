#!/usr/bin/env python
"""Generate a small synthetic semantic-segmentation dataset of coloured shapes in mmseg's layout.

The images are those of ``make_toy_coco.py`` (flat-coloured circles, triangles and rectangles on a
textured background; colours random and independent of the class, so the class is the shape);
each comes with a label map instead of COCO polygons. Layout under ``OUT`` (mmseg's
``BaseSegDataset`` with ``data_root=OUT``, ``img_suffix='.png'``, ``seg_map_suffix='.png'``,
``data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train')``)::

    OUT/img_dir/{train,val}/000001.png     RGB image
    OUT/ann_dir/{train,val}/000001.png     8-bit label map: 0 background, 1 circle, 2 triangle,
                                           3 rectangle (``--classes`` more: star, ellipse)
    OUT/toy_seg_stamp.json                 generation parameters; a rerun with the same ones
                                           is a no-op

Usage::

    python tools/dev/make_toy_seg.py --out data/toy_seg --num-train 64 --num-val 16 --size 128

or from python (``sys.path.insert(0, 'tools/dev')``)::

    from make_toy_seg import make_toy_seg
    info = make_toy_seg('data/toy_seg', num_train=64, num_val=16, size=128)
    info['classes'], info['metainfo']
"""
import argparse
import os
import os.path as osp

import numpy as np
from PIL import Image

from make_toy_coco import (ALL_PALETTE, DEFAULT_NUM_CLASSES, _make_image,  # tools/dev, beside it
                           class_names, generate_once)

STAMP_NAME = 'toy_seg_stamp.json'
FORMAT_VERSION = 1  # bump when the generator changes so stale datasets are rebuilt
BACKGROUND = 'background'
BACKGROUND_COLOUR = (0, 0, 0)


def seg_classes(num_classes=DEFAULT_NUM_CLASSES):
    """Label names in label-value order: 'background' (0), then the shapes (1..num_classes)."""
    return (BACKGROUND, ) + tuple(class_names(num_classes))


def seg_metainfo(num_classes=DEFAULT_NUM_CLASSES):
    """``metainfo`` for mmseg's ``BaseSegDataset``: classes and a palette, background first."""
    return dict(classes=seg_classes(num_classes),
                palette=[list(BACKGROUND_COLOUR)] + [list(c) for c in ALL_PALETTE[:num_classes]])


def label_map(height, width, objects):
    """uint8 label map: each pixel the class (1-based) of the object drawn last over it."""
    labels = np.zeros((height, width), dtype=np.uint8)
    for obj in objects:  # drawing order: later objects cover earlier ones, as in the image
        labels[obj['mask']] = obj['label'] + 1
    return labels


def _write_split(out_dir, split, split_id, params):
    height, width = params['size']
    shapes = class_names(params['classes'])
    img_dir = osp.join(out_dir, 'img_dir', split)
    ann_dir = osp.join(out_dir, 'ann_dir', split)
    for folder in (img_dir, ann_dir):
        os.makedirs(folder, exist_ok=True)
        for name in os.listdir(folder):  # nothing left from an earlier, larger dataset
            if name.endswith('.png'):
                os.remove(osp.join(folder, name))
    for idx in range(params[f'num_{split}']):
        # One generator per image: a split does not depend on the other split's size.
        rng = np.random.default_rng([params['seed'], split_id, idx + 1, 0x5E6])
        num_objects = int(rng.integers(params['min_objects'], params['max_objects'] + 1))
        pixels, objects = _make_image(height, width, num_objects, shapes, rng,
                                      params['min_scale'], params['max_scale'],
                                      params['max_overlap'])
        name = f'{idx + 1:06d}.png'
        Image.fromarray(pixels).save(osp.join(img_dir, name))
        Image.fromarray(label_map(height, width, objects), mode='L').save(osp.join(ann_dir, name))


def _complete(out_dir, params):
    for split in ('train', 'val'):
        for kind in ('img_dir', 'ann_dir'):
            folder = osp.join(out_dir, kind, split)
            if not osp.isdir(folder):
                return False
            if len([f for f in os.listdir(folder) if f.endswith('.png')]) != params[f'num_{split}']:
                return False
    return True


def make_toy_seg(out_dir, num_train=64, num_val=16, size=128, seed=0, num_classes=3,
                 min_objects=1, max_objects=4, min_scale=0.2, max_scale=0.5, max_overlap=0.05,
                 force=False):
    """Write the toy dataset to ``out_dir`` (skipped when it exists with the same parameters).

    Args:
        out_dir: dataset root.
        num_train, num_val: number of images per split.
        size: image side ``S`` or ``(H, W)``.
        seed: random seed; the same parameters give byte-identical files.
        num_classes: shape classes (the first ``num_classes`` of make_toy_coco's shapes),
            label values 1..num_classes; 0 is the background.
        min_objects, max_objects: objects per image (uniform in the range).
        min_scale, max_scale: object extent as a fraction of the shorter image side.
        max_overlap: largest fraction of an object's area another object may cover.
        force: regenerate even when the stamp matches.

    Returns:
        dict with ``root`` (absolute), ``classes`` (background first), ``metainfo``,
        ``params`` and ``generated`` (False if it was up to date).
    """
    size = [int(size), int(size)] if isinstance(size, int) else [int(s) for s in size]
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f'size must be S or (H, W) with sides >= 16, got {size}')
    if not 1 <= min_objects <= max_objects:
        raise ValueError('need 1 <= min_objects <= max_objects')
    if not 0 < min_scale <= max_scale < 1:
        raise ValueError('need 0 < min_scale <= max_scale < 1')
    class_names(num_classes)  # validates num_classes
    params = dict(version=FORMAT_VERSION, num_train=int(num_train), num_val=int(num_val),
                  size=size, seed=int(seed), classes=int(num_classes),
                  min_objects=int(min_objects), max_objects=int(max_objects),
                  min_scale=float(min_scale), max_scale=float(max_scale),
                  max_overlap=float(max_overlap))
    out_dir = osp.abspath(out_dir)

    def write(root):
        for split_id, split in enumerate(('train', 'val')):
            _write_split(root, split, split_id, params)

    generated = generate_once(out_dir, STAMP_NAME, params, write,
                              complete=lambda: _complete(out_dir, params), force=force)
    return dict(root=out_dir, classes=seg_classes(num_classes),
                metainfo=seg_metainfo(num_classes), params=params, generated=generated)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/toy_seg', help='dataset root to write')
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--size', type=int, nargs='+', default=[128], help='S or H W')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--classes', type=int, default=DEFAULT_NUM_CLASSES,
                        help='number of shape classes (background comes on top)')
    parser.add_argument('--force', action='store_true', help='regenerate even if up to date')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    size = args.size[0] if len(args.size) == 1 else args.size
    info = make_toy_seg(args.out, num_train=args.num_train, num_val=args.num_val, size=size,
                        seed=args.seed, num_classes=args.classes, force=args.force)
    state = 'written' if info['generated'] else 'up to date'
    print(f"{info['root']}: {state} ({args.num_train} train / {args.num_val} val images, "
          f"classes {', '.join(info['classes'])})")
    return info


if __name__ == '__main__':
    main()
