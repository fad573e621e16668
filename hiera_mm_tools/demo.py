"""The detection demo's code: an mmdet ``DetInferencer`` for a config and checkpoint, and the
demo's picture, a grid of upscaled images with the predictions drawn (``tools/demo.py`` draws
one image with mmdet's visualizer; ``tools/dev/run_demo.py`` draws the grid).

Each tile is an image resized to ``tile_size`` pixels (bicubic), with the instances scoring above
the threshold drawn on it in their class colour: the mask filled and outlined, the box, and a
label (class name and score on a filled background) inside the top of the box, moved above, to
the bottom of or below the box when it would cover a label already placed, and left out when no
place is free (crowded low scores). A caption under each tile can give
the ground truth. Drawing uses PIL; the font is matplotlib's bundled DejaVu Sans.

    from hiera_mm_tools.demo import build_inferencer, predict, draw_grid
    inferencer = build_inferencer('configs/x.py', 'work_dirs/x/iter_300.pth')
    samples = [dict(image=path, pred=predict(inferencer, path), caption='...') for path in paths]
    info = draw_grid(samples, 'grid.png', inferencer.model.dataset_meta['classes'])
"""
import numpy as np

#: Colours for classes a dataset gives no palette for (RGB).
DEFAULT_PALETTE = ((220, 20, 60), (0, 128, 255), (0, 200, 0), (255, 165, 0), (160, 32, 240),
                   (0, 190, 190), (240, 0, 200), (130, 90, 40))
MASK_ALPHA = 0.4
BOX_WIDTH = 3
LABEL_PAD = 3


def _config_metainfo(cfg):
    """``metainfo`` of the config's test (or val) dataset, if it names classes."""
    for key in ('test_dataloader', 'val_dataloader', 'train_dataloader'):
        data = cfg.get(key, None)
        if not data:
            continue
        dataset = data.get('dataset', {})
        while isinstance(dataset, dict) and 'dataset' in dataset:
            dataset = dataset['dataset']
        meta = dataset.get('metainfo', None) if isinstance(dataset, dict) else None
        if meta and meta.get('classes'):
            return dict(meta)
    return None


def build_inferencer(config, weights=None, device=None):
    """A ``DetInferencer`` for ``config`` (path or Config) and an optional checkpoint.

    Class names come from the checkpoint's ``dataset_meta``; without a checkpoint, from the
    config's dataset ``metainfo`` (mmdet would otherwise fall back to COCO's 80 names).
    """
    from mmengine.config import Config
    from mmdet.apis import DetInferencer
    from hiera_mm.openmmlab.checkpoint_loader import trust_checkpoint_location
    from .runner import import_integration
    import_integration('mmdet')  # hiera_mm's modules, whatever the config's custom_imports say
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    trust_checkpoint_location(weights)  # the user named this checkpoint
    inferencer = DetInferencer(model=cfg, weights=weights, device=device, show_progress=False)
    meta = _config_metainfo(cfg)
    if weights is None and meta is not None:
        if 'palette' not in meta:
            meta['palette'] = 'random'
        inferencer.model.dataset_meta = meta
        inferencer.visualizer.dataset_meta = meta
    return inferencer


def load_font(size, bold=False):
    """DejaVu Sans at ``size`` pixels (matplotlib ships it), else PIL's default font."""
    from PIL import ImageFont
    try:
        from matplotlib import font_manager
        prop = font_manager.FontProperties(family='DejaVu Sans',
                                           weight='bold' if bold else 'normal')
        return ImageFont.truetype(font_manager.findfont(prop), size)
    except Exception:  # no matplotlib or no FreeType: PIL's own scalable default
        return ImageFont.load_default(size=size)


def predict(inferencer, image):
    """mmdet ``DetInferencer`` predictions for one image as numpy arrays: ``bboxes`` (N, 4)
    xyxy in image pixels, ``scores`` (N,), ``labels`` (N,) and, for instance segmentation,
    ``masks`` (N, H, W) bool (else None)."""
    out = inferencer(image, return_datasamples=True, return_vis=False, no_save_vis=True,
                     no_save_pred=True)
    inst = out['predictions'][0].pred_instances
    masks = inst.masks if 'masks' in inst else None
    if masks is not None and hasattr(masks, 'to_ndarray'):  # BitmapMasks
        masks = masks.to_ndarray()
    if masks is not None and hasattr(masks, 'cpu'):
        masks = masks.cpu().numpy()
    return dict(bboxes=inst.bboxes.cpu().numpy().astype(np.float64),
                scores=inst.scores.cpu().numpy().astype(np.float64),
                labels=inst.labels.cpu().numpy().astype(np.int64),
                masks=None if masks is None else np.asarray(masks, dtype=bool))


def _text_colour(rgb):
    """Black or white, whichever reads better on ``rgb`` (ITU-R BT.601 luma)."""
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (0, 0, 0) if luma > 150 else (255, 255, 255)


def box_iou(a, b):
    """Intersection over union of two xyxy boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _overlaps(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place_label(box, size, placed, bounds):
    """The rectangle for a ``size`` label of ``box``: inside its top edge, else above it,
    inside its bottom edge, below it; the first that stays in ``bounds`` and clear of the
    ``placed`` label rectangles, or None when none is (the box then goes unlabelled)."""
    x1, y1, x2, y2 = box
    w, h = size
    inset = BOX_WIDTH - 1
    candidates = [(x1 + inset, y1 + inset), (x1, y1 - h), (x1 + inset, y2 - inset - h),
                  (x1, y2 + 1)]
    for x, y in candidates:
        x = min(max(x, 0), bounds[0] - w)  # kept inside the tile when wider than the box
        rect = (x, y, x + w, y + h)
        if y >= 0 and y + h <= bounds[1] and not any(_overlaps(rect, r) for r in placed):
            return rect
    return None


def draw_tile(image, pred, class_names, palette=None, tile_size=384, score_thr=0.3,
              font=None, best_of_iou=None):
    """One tile: ``image`` (H, W, 3 RGB uint8) resized so its longer side is ``tile_size``,
    with the instances of ``pred`` (see :func:`predict`) scoring above ``score_thr`` drawn;
    with ``best_of_iou``, only the best of boxes overlapping that much (IoU, any class: one
    guess per object).

    Returns ``(tile, info)``: a PIL RGB image and ``dict(scale, boxes, label_boxes, texts)``:
    the boxes drawn and the labels written with their rectangles, in tile pixels, highest
    score first (a box whose label found no free place has none).
    """
    from PIL import Image, ImageDraw, ImageFilter
    if isinstance(palette, str) or not palette:  # mmdet's 'random' and the like: ours instead
        palette = DEFAULT_PALETTE
    palette = [tuple(int(c) for c in p) for p in palette]
    font = font or load_font(max(14, tile_size // 22), bold=True)
    h, w = image.shape[:2]
    scale = tile_size / max(h, w)
    size = (round(w * scale), round(h * scale))
    tile = np.asarray(Image.fromarray(image).convert('RGB').resize(size, Image.BICUBIC),
                      dtype=np.float64)

    scores = np.asarray(pred['scores'], dtype=np.float64)
    order = [i for i in np.argsort(-scores, kind='stable') if scores[i] > score_thr]
    if best_of_iou is not None:
        best = []
        for i in order:
            if all(box_iou(pred['bboxes'][i], pred['bboxes'][j]) < best_of_iou for j in best):
                best.append(i)
        order = best
    colours = [palette[int(pred['labels'][i]) % len(palette)] for i in order]
    masks = pred.get('masks')
    # masks first (lowest score underneath), then boxes, then labels on top of everything
    if masks is not None:
        for i, colour in reversed(list(zip(order, colours))):
            # upscaled smoothly, so the outline follows the shape rather than its pixels
            m = Image.fromarray(masks[i].astype(np.uint8) * 255).resize(size, Image.BILINEAR)
            inside = np.asarray(m.filter(ImageFilter.GaussianBlur(scale))) >= 128
            region = Image.fromarray(inside.astype(np.uint8) * 255)
            edge = ((np.asarray(region.filter(ImageFilter.MaxFilter(3))) > 0)
                    & ~(np.asarray(region.filter(ImageFilter.MinFilter(3))) > 0))
            tile[inside] = (1 - MASK_ALPHA) * tile[inside] + MASK_ALPHA * np.array(colour)
            tile[edge] = colour
    canvas = Image.fromarray(np.round(tile).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    boxes = []
    for i, colour in zip(order, colours):
        box = [float(v) * scale for v in pred['bboxes'][i]]
        box = [int(round(min(max(v, 0), lim - 1)))
               for v, lim in zip(box, (size[0], size[1], size[0], size[1]))]
        draw.rectangle(box, outline=colour, width=BOX_WIDTH)
        boxes.append(box)
    placed, texts = [], []
    for i, colour, box in zip(order, colours, boxes):
        label = int(pred['labels'][i])
        name = class_names[label] if label < len(class_names) else str(label)
        text = f'{name} {scores[i]:.2f}'
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        rect = _place_label(box, (right - left + 2 * LABEL_PAD, bottom - top + 2 * LABEL_PAD),
                            placed, size)
        if rect is None:
            continue
        draw.rectangle(rect, fill=colour)
        draw.text((rect[0] + LABEL_PAD - left, rect[1] + LABEL_PAD - top), text,
                  fill=_text_colour(colour), font=font)
        placed.append(rect)
        texts.append(text)
    return canvas, dict(scale=scale, boxes=boxes, label_boxes=placed, texts=texts)


def _fit_text(draw, text, font, width):
    """``text``, shortened with an ellipsis until it is at most ``width`` pixels wide; empty
    where not even the ellipsis fits."""
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + '…' if len(text) > 1 else ''
    return text


def draw_grid(samples, out_path, class_names, palette=None, score_thr=0.3, tile_size=384,
              cols=3, title=None, gap=10, best_of_iou=None):
    """Draw ``samples`` (dicts with ``image``: a path or an (H, W, 3) RGB array, ``pred``: see
    :func:`predict`, optional ``caption``) as a grid of ``cols`` tiles a row, under an optional
    ``title``, and save it to ``out_path``. ``score_thr`` and ``best_of_iou``: see
    :func:`draw_tile`.

    Returns ``dict(path, width, height, tiles)``; each tile dict has its ``x``, ``y`` (top-left
    in the picture), ``width``, ``height``, ``image`` (the path, or None for an array) and what
    :func:`draw_tile` reports.
    """
    import os
    import os.path as osp
    from PIL import Image, ImageDraw
    if not samples:
        raise ValueError('draw_grid needs at least one sample (image and predictions)')
    label_font = load_font(max(14, tile_size // 22), bold=True)
    caption_font = load_font(max(13, tile_size // 28))
    title_font = load_font(max(16, tile_size // 21), bold=True)
    tiles, paths = [], []
    for sample in samples:
        image = sample['image']
        paths.append(image if isinstance(image, str) else None)
        if isinstance(image, str):
            image = np.asarray(Image.open(image).convert('RGB'))
        tile, info = draw_tile(image, sample['pred'], class_names, palette, tile_size,
                               score_thr, label_font, best_of_iou)
        tiles.append((tile, info, sample.get('caption')))
    rows = -(-len(tiles) // cols)
    cols = min(cols, len(tiles))
    cell_w = max(t.width for t, _, _ in tiles)
    cell_h = max(t.height for t, _, _ in tiles)
    caption_h = 0
    if any(c for _, _, c in tiles):
        caption_h = caption_font.getbbox('Ag')[3] + gap
    title_h = title_font.getbbox('Ag')[3] + 2 * gap if title else 0
    width = cols * cell_w + (cols + 1) * gap
    height = title_h + rows * (cell_h + caption_h + gap) + gap
    picture = Image.new('RGB', (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    if title:
        draw.text((gap, gap), _fit_text(draw, title, title_font, width - 2 * gap),
                  fill=(20, 20, 20), font=title_font)
    out_tiles = []
    for k, ((tile, info, caption), image_path) in enumerate(zip(tiles, paths)):
        x = gap + (k % cols) * (cell_w + gap)
        y = title_h + gap + (k // cols) * (cell_h + caption_h + gap)
        picture.paste(tile, (x, y))
        if caption:
            draw.text((x, y + tile.height + gap // 2),
                      _fit_text(draw, caption, caption_font, tile.width),
                      fill=(60, 60, 60), font=caption_font)
        out_tiles.append(dict(info, x=x, y=y, width=tile.width, height=tile.height,
                              image=image_path))
    out_dir = osp.dirname(osp.abspath(out_path))
    os.makedirs(out_dir, exist_ok=True)
    picture.save(out_path)
    return dict(path=out_path, width=width, height=height, tiles=out_tiles)
