#!/usr/bin/env python
"""Generate a small synthetic COCO-format instance-segmentation dataset of coloured shapes.

Layout written under ``OUT`` (matches mmdet's ``CocoDataset`` with ``data_root=OUT``,
``ann_file='annotations/instances_train.json'`` and ``data_prefix=dict(img='train/')``)::

    OUT/train/000001.png ...
    OUT/val/000001.png ...
    OUT/annotations/instances_train.json
    OUT/annotations/instances_val.json
    OUT/toy_coco_stamp.json        # generation parameters; a rerun with the same ones is a no-op

Every object is a filled polygon of one flat colour (plus a little pixel noise) on a textured,
low-saturation background. The polygon drawn is exactly the one stored in ``segmentation``,
rasterised by pixel centres as pycocotools decodes it, so its masks cover the drawn pixels.
Objects are large (15-45 % of the image side by default) and overlap only slightly, so a
detector learns them within a few CPU epochs.
Colours are random and independent of the class: the class is the shape.

Usage::

    python tools/dev/make_toy_coco.py --out data/toy_coco --num-train 64 --num-val 16 --size 256

or from python (``sys.path.insert(0, 'tools/dev')``)::

    from make_toy_coco import make_toy_coco, class_names
    info = make_toy_coco('data/toy_coco', num_train=64, num_val=16)
    info['classes'], info['train_ann'], info['metainfo']
"""
import argparse
import contextlib
import json
import math
import os
import os.path as osp

import numpy as np
from PIL import Image

#: All shape classes, in category-id order (id = index + 1). ``--classes N`` uses the first N.
ALL_CLASSES = ('circle', 'triangle', 'rectangle', 'star', 'ellipse')
#: Classes of the default dataset (``--classes 3``).
DEFAULT_NUM_CLASSES = 3
CLASSES = ALL_CLASSES[:DEFAULT_NUM_CLASSES]
#: A fixed colour per class, for mmdet's visualizer (``metainfo['palette']``).
ALL_PALETTE = ((220, 20, 60), (0, 128, 255), (0, 200, 0), (255, 165, 0), (160, 32, 240))

STAMP_NAME = 'toy_coco_stamp.json'
FORMAT_VERSION = 1  # bump when the generator changes so stale datasets are rebuilt

# Per-pixel noise amplitudes (uniform, +-): objects stay within OBJECT_NOISE of their colour.
OBJECT_NOISE = 6
BACKGROUND_NOISE = 18
# Minimum L-inf distance (beyond the noise) between an object's colour and the background
# pixels in its box, and between the colours of objects whose boxes meet, so that an object is
# exactly the pixels of its colour within its box.
MIN_COLOUR_GAP = 60


def class_names(num_classes=DEFAULT_NUM_CLASSES):
    """Names of the first ``num_classes`` shape classes (category ids 1..num_classes)."""
    if not 1 <= num_classes <= len(ALL_CLASSES):
        raise ValueError(f'num_classes must be in [1, {len(ALL_CLASSES)}], got {num_classes}')
    return ALL_CLASSES[:num_classes]


def metainfo(num_classes=DEFAULT_NUM_CLASSES):
    """``metainfo`` dict for mmdet datasets: ``dict(classes=..., palette=...)``."""
    return dict(classes=class_names(num_classes), palette=list(ALL_PALETTE[:num_classes]))


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------
def _regular(n, radius, phase=0.0):
    t = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


def _rotate(pts, angle):
    c, s = math.cos(angle), math.sin(angle)
    return pts @ np.array([[c, s], [-s, c]])


def _shape_polygon(name, size, rng):
    """Vertices (N, 2) of a shape centred on the origin whose extent is about ``size``."""
    r = size / 2.0
    angle = rng.uniform(0, 2 * math.pi)
    if name == 'circle':
        return _regular(64, r)
    if name == 'triangle':
        # Roughly equilateral, each vertex jittered a little.
        t = angle + 2 * math.pi * np.arange(3) / 3 + rng.uniform(-0.15, 0.15, 3)
        rad = r * rng.uniform(0.9, 1.0, 3)
        return np.stack([rad * np.cos(t), rad * np.sin(t)], axis=1)
    if name == 'rectangle':
        aspect = rng.uniform(0.5, 1.0)
        w, h = (size, size * aspect) if rng.random() < 0.5 else (size * aspect, size)
        pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2.0 * 0.85
        return _rotate(pts, rng.uniform(-math.pi / 6, math.pi / 6))
    if name == 'star':
        outer = _regular(5, r, angle)
        inner = _regular(5, r * 0.45, angle + math.pi / 5)
        return np.stack([outer, inner], axis=1).reshape(-1, 2)
    if name == 'ellipse':
        ratio = rng.uniform(0.4, 0.65)
        pts = _regular(64, r)
        pts[:, 1] *= ratio
        return _rotate(pts, angle)
    raise ValueError(f'unknown shape {name!r}')


def polygon_area(poly):
    """Shoelace area of a flat ``[x1, y1, x2, y2, ...]`` polygon."""
    p = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _rasterize(flat_poly, height, width):
    """Boolean mask of a polygon in COCO coordinates: pixel (i, j) covers [j, j+1) x [i, i+1)
    and is inside when its centre (j + 0.5, i + 0.5) is (even-odd rule). This agrees with
    pycocotools' polygon decoding up to a few boundary pixels."""
    pts = np.asarray(flat_poly, dtype=np.float64).reshape(-1, 2)
    mask = np.zeros((height, width), dtype=bool)
    x0 = max(int(np.floor(pts[:, 0].min())), 0)
    y0 = max(int(np.floor(pts[:, 1].min())), 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + 1, width)
    y1 = min(int(np.ceil(pts[:, 1].max())) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return mask
    xs = np.arange(x0, x1) + 0.5
    ys = (np.arange(y0, y1) + 0.5)[:, None]
    inside = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for (ax, ay), (bx, by) in zip(pts, np.roll(pts, -1, axis=0)):
        if ay == by:
            continue  # horizontal edges never cross a scan line
        spans = (ay > ys) != (by > ys)  # rows whose centre line crosses the edge
        cross_x = ax + (bx - ax) * (ys - ay) / (by - ay)
        inside ^= spans & (xs[None, :] < cross_x)
    mask[y0:y1, x0:x1] = inside
    return mask


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------
def _background(height, width, rng):
    """Textured, low-saturation background (float32 HxWx3, 0..255)."""
    base = rng.uniform(70, 190)
    tint = rng.uniform(-12, 12, 3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    gx, gy = rng.uniform(-35, 35, 2)
    grad = gx * (xx / width - 0.5) + gy * (yy / height - 0.5)
    # Smooth blotches: low-resolution noise upsampled bilinearly.
    coarse = rng.uniform(-20, 20, (6, 6)).astype(np.float32)
    blot = np.asarray(Image.fromarray(coarse, mode='F').resize((width, height), Image.BILINEAR))
    # Thin stripes give some high-frequency texture.
    f, phase, theta = rng.uniform(0.08, 0.25), rng.uniform(0, 2 * math.pi), rng.uniform(0, math.pi)
    stripes = 6 * np.sin(f * (xx * math.cos(theta) + yy * math.sin(theta)) + phase)
    lum = base + grad + blot + stripes
    img = lum[..., None] + tint[None, None, :]
    img += rng.uniform(-BACKGROUND_NOISE, BACKGROUND_NOISE, (height, width, 3))
    return np.clip(img, 0, 255).astype(np.float32)


def _random_colour(rng):
    """A saturated random colour (RGB floats)."""
    h, s, v = rng.uniform(0, 1), rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb) * 255.0


def _boxes_meet(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _make_image(height, width, num_objects, classes, rng, min_scale, max_scale, max_overlap):
    """Draw one image. Returns (uint8 HxWx3 array, list of object dicts)."""
    img = _background(height, width, rng)
    bg = img.copy()
    side = min(height, width)
    objects = []  # dicts: label, poly (flat list), mask, colour
    occupied = np.zeros((height, width), dtype=np.int32)  # 1 + index of the topmost object, 0 = bg
    for _ in range(num_objects):
        # The class is drawn once per object so that classes whose shapes are harder to place
        # (large areas) are not under-represented.
        label = int(rng.integers(len(classes)))
        for _attempt in range(50):
            size = rng.uniform(min_scale, max_scale) * side
            pts = _shape_polygon(classes[label], size, rng)
            lo, hi = pts.min(0), pts.max(0)
            ext = hi - lo
            if ext[0] >= width - 2 or ext[1] >= height - 2:
                continue
            # Keep the whole shape inside the image, one pixel from the border.
            cx = rng.uniform(1 - lo[0], width - 1 - hi[0])
            cy = rng.uniform(1 - lo[1], height - 1 - hi[1])
            pts = pts + np.array([cx, cy])
            flat = [round(float(v), 2) for v in pts.reshape(-1)]
            mask = _rasterize(flat, height, width)
            area = int(mask.sum())
            if area < 16:
                continue
            # Little overlap with earlier objects, measured on each side.
            under = occupied[mask]
            hit = under[under > 0]
            if hit.size:
                if hit.size > max_overlap * area:
                    continue
                ok = True
                for k in np.unique(hit):
                    prev = objects[k - 1]
                    if (np.count_nonzero(hit == k) > max_overlap * prev['area']
                            or (mask & prev['mask']).sum() > max_overlap * prev['area']):
                        ok = False
                        break
                if not ok:
                    continue
            # A colour distinct from the background around it (its bounding box plus a margin)
            # and from every object whose box meets that box, so that each object is exactly
            # the pixels of its colour within its box.
            box = (max(int(pts[:, 0].min()) - 2, 0), max(int(pts[:, 1].min()) - 2, 0),
                   min(int(pts[:, 0].max()) + 3, width), min(int(pts[:, 1].max()) + 3, height))
            near = [o['colour'] for o in objects if _boxes_meet(box, o['box'])]
            below = bg[box[1]:box[3], box[0]:box[2]].reshape(-1, 3)
            if near:
                below = np.concatenate([below, np.asarray(near, dtype=np.float32)], axis=0)
            colour = None
            for _c in range(30):
                cand = np.round(_random_colour(rng))
                if np.abs(below - cand).max(axis=1).min() - OBJECT_NOISE >= MIN_COLOUR_GAP:
                    colour = cand
                    break
            if colour is None:
                continue
            noise = rng.uniform(-OBJECT_NOISE, OBJECT_NOISE, (area, 3))
            img[mask] = np.clip(colour[None, :] + noise, 0, 255)
            occupied[mask] = len(objects) + 1
            objects.append(dict(label=label, poly=flat, mask=mask, area=area, box=box,
                                colour=[int(c) for c in colour]))
            break
    return np.clip(np.round(img), 0, 255).astype(np.uint8), objects


# --------------------------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------------------------
def _split(out_dir, split, split_id, num_images, params):
    height, width = params['size']
    classes = class_names(params['classes'])
    img_dir = osp.join(out_dir, split)
    os.makedirs(img_dir, exist_ok=True)
    # Images without objects: an exact, seed-determined subset.
    order_rng = np.random.default_rng([params['seed'], split_id, 0xE4])
    num_empty = int(round(params['empty_fraction'] * num_images))
    empty = set(order_rng.permutation(num_images)[:num_empty].tolist())

    images, annotations = [], []
    for idx in range(num_images):
        # One generator per image: a split's images do not depend on the other split's size.
        rng = np.random.default_rng([params['seed'], split_id, idx + 1])
        n = 0 if idx in empty else int(rng.integers(params['min_objects'],
                                                    params['max_objects'] + 1))
        pixels, objects = _make_image(height, width, n, classes, rng, params['min_scale'],
                                      params['max_scale'], params['max_overlap'])
        image_id = idx + 1
        file_name = f'{image_id:06d}.png'
        Image.fromarray(pixels).save(osp.join(img_dir, file_name))
        images.append(dict(id=image_id, file_name=file_name, height=height, width=width))
        for obj in objects:
            xy = np.asarray(obj['poly']).reshape(-1, 2)
            x0, y0 = xy.min(0)
            x1, y1 = xy.max(0)
            annotations.append(dict(
                id=len(annotations) + 1,
                image_id=image_id,
                category_id=obj['label'] + 1,
                segmentation=[obj['poly']],
                area=round(polygon_area(obj['poly']), 2),
                bbox=[round(float(x0), 2), round(float(y0), 2),
                      round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
                iscrowd=0,
                color=obj['colour'],  # extra field (ignored by COCO tools); used by the tests
            ))
    coco = dict(
        info=dict(description=f'hiera_mm toy shapes ({split})', version=str(FORMAT_VERSION),
                  year=2024, contributor='tools/dev/make_toy_coco.py'),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=name, supercategory='shape')
                    for i, name in enumerate(classes)],
    )
    ann_file = osp.join(out_dir, 'annotations', f'instances_{split}.json')
    tmp = ann_file + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(coco, f)
    os.replace(tmp, ann_file)
    # Drop images left from an earlier, larger dataset.
    keep = {im['file_name'] for im in images}
    for name in os.listdir(img_dir):
        if name.endswith('.png') and name not in keep:
            os.remove(osp.join(img_dir, name))
    return ann_file


@contextlib.contextmanager
def _locked(out_dir):
    """Serialise concurrent generators writing the same directory (POSIX only)."""
    os.makedirs(out_dir, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(osp.join(out_dir, '.toy_coco.lock'), 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def generate_once(out_dir, stamp_name, params, write, complete, force=False):
    """Run ``write(out_dir)`` unless a finished earlier run with the same ``params`` is there.

    A stamp file holding the parameters marks a finished run; it is removed before writing, so
    an interrupted run never looks complete. Concurrent callers are serialised. Returns whether
    it wrote.
    """
    stamp = osp.join(out_dir, stamp_name)
    with _locked(out_dir):
        old = None
        if osp.isfile(stamp):
            try:
                with open(stamp) as f:
                    old = json.load(f)
            except (OSError, ValueError):
                old = None
        if not force and old == params and complete():
            return False
        if osp.exists(stamp):
            os.remove(stamp)
        write(out_dir)
        with open(stamp, 'w') as f:
            json.dump(params, f, indent=1)
    return True


def _complete(out_dir, params):
    for split in ('train', 'val'):
        ann = osp.join(out_dir, 'annotations', f'instances_{split}.json')
        img_dir = osp.join(out_dir, split)
        if not osp.isfile(ann) or not osp.isdir(img_dir):
            return False
        n = len([f for f in os.listdir(img_dir) if f.endswith('.png')])
        if n != params[f'num_{split}']:
            return False
    return True


def make_toy_coco(out_dir, num_train=64, num_val=16, size=256, seed=0, max_objects=4,
                  num_classes=DEFAULT_NUM_CLASSES, empty_fraction=0.0, min_objects=1,
                  min_scale=0.15, max_scale=0.45, max_overlap=0.05, force=False, verbose=False):
    """Write the toy dataset to ``out_dir`` (skipped when it exists with the same parameters).

    Args:
        out_dir: dataset root.
        num_train, num_val: number of images per split.
        size: image side ``S`` or ``(H, W)``.
        seed: random seed; the same parameters give byte-identical files.
        max_objects, min_objects: objects per non-empty image (uniform in the range).
        num_classes: use the first ``num_classes`` of :data:`ALL_CLASSES`.
        empty_fraction: fraction of each split's images that have no objects.
        min_scale, max_scale: object extent as a fraction of the shorter image side.
        max_overlap: largest fraction of an object's area another object may cover.
        force: regenerate even when the stamp matches.

    Returns:
        dict with ``root``, ``train_ann``, ``val_ann``, ``train_img_dir``, ``val_img_dir``
        (absolute paths), ``train_prefix``/``val_prefix`` (``'train/'``, ``'val/'``),
        ``classes``, ``metainfo``, ``params`` and ``generated`` (False if it was up to date).
    """
    if isinstance(size, int):
        size = (size, size)
    size = [int(s) for s in size]
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f'size must be S or (H, W) with sides >= 16, got {size}')
    if not 0.0 <= empty_fraction <= 1.0:
        raise ValueError('empty_fraction must be in [0, 1]')
    if not 1 <= min_objects <= max_objects:
        raise ValueError('need 1 <= min_objects <= max_objects')
    if not 0 < min_scale <= max_scale < 1:
        raise ValueError('need 0 < min_scale <= max_scale < 1')
    classes = class_names(num_classes)
    params = dict(version=FORMAT_VERSION, num_train=int(num_train), num_val=int(num_val),
                  size=size, seed=int(seed), max_objects=int(max_objects),
                  min_objects=int(min_objects), classes=int(num_classes),
                  empty_fraction=float(empty_fraction), min_scale=float(min_scale),
                  max_scale=float(max_scale), max_overlap=float(max_overlap))
    out_dir = osp.abspath(out_dir)

    def write(root):
        os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
        for split_id, split in enumerate(('train', 'val')):
            _split(root, split, split_id, params[f'num_{split}'], params)

    generated = generate_once(out_dir, STAMP_NAME, params, write,
                              complete=lambda: _complete(out_dir, params), force=force)
    if verbose:
        state = 'generated' if generated else 'up to date, kept'
        print(f'toy COCO dataset {state}: {out_dir} ({num_train} train / {num_val} val images, '
              f'{size[0]}x{size[1]}, classes {", ".join(classes)})')
    return dict(
        root=out_dir,
        train_ann=osp.join(out_dir, 'annotations', 'instances_train.json'),
        val_ann=osp.join(out_dir, 'annotations', 'instances_val.json'),
        train_img_dir=osp.join(out_dir, 'train'),
        val_img_dir=osp.join(out_dir, 'val'),
        train_prefix='train/',
        val_prefix='val/',
        classes=classes,
        metainfo=metainfo(num_classes),
        params=params,
        generated=generated,
    )


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Generate a toy COCO instance-segmentation dataset '
                                            'of coloured shapes')
    p.add_argument('--out', default='data/toy_coco', help='output directory')
    p.add_argument('--num-train', type=int, default=64, help='training images')
    p.add_argument('--num-val', type=int, default=16, help='validation images')
    p.add_argument('--size', type=int, nargs='+', default=[256], metavar='S',
                   help='image side S, or H W')
    p.add_argument('--max-objects', type=int, default=4, help='most objects per image')
    p.add_argument('--min-objects', type=int, default=1, help='fewest objects per non-empty image')
    p.add_argument('--classes', type=int, default=DEFAULT_NUM_CLASSES,
                   help=f'number of shape classes, 1..{len(ALL_CLASSES)} '
                        f'(in order: {", ".join(ALL_CLASSES)})')
    p.add_argument('--empty-fraction', type=float, default=0.0,
                   help='fraction of images without any object')
    p.add_argument('--min-scale', type=float, default=0.15,
                   help='smallest object extent, fraction of the image side')
    p.add_argument('--max-scale', type=float, default=0.45,
                   help='largest object extent, fraction of the image side')
    p.add_argument('--max-overlap', type=float, default=0.05,
                   help='largest fraction of an object that another may cover')
    p.add_argument('--seed', type=int, default=0, help='random seed')
    p.add_argument('--force', action='store_true', help='regenerate even if up to date')
    args = p.parse_args(argv)
    if len(args.size) > 2:
        p.error('--size takes S or H W')
    return args


def main(argv=None):
    a = parse_args(argv)
    info = make_toy_coco(a.out, num_train=a.num_train, num_val=a.num_val, size=a.size,
                         seed=a.seed, max_objects=a.max_objects, num_classes=a.classes,
                         empty_fraction=a.empty_fraction, min_objects=a.min_objects,
                         min_scale=a.min_scale, max_scale=a.max_scale,
                         max_overlap=a.max_overlap, force=a.force, verbose=True)
    return info


if __name__ == '__main__':
    main()
