"""The demo's picture (hiera_mm_tools.demo.draw_grid): upscaled tiles, boxes, masks, legible
labels that keep apart, low scores left out; no model needed."""
import numpy as np
from PIL import Image, ImageDraw

from hiera_mm_tools.demo import draw_grid

CLASSES = ('circle', 'triangle', 'rectangle')


def assert_predictions_drawn(png, tiles, min_width=640, min_tile=320, min_label_height=16):
    """The picture at ``png`` is at least ``min_width`` px wide; each tile is its image upscaled
    to at least ``min_tile`` px, every reported box outline and label is drawn on it, and
    nothing is drawn elsewhere."""
    picture = np.asarray(Image.open(png).convert('RGB'), dtype=np.int32)
    assert picture.shape[1] >= min_width, picture.shape
    for tile in tiles:
        source = Image.open(tile['image']).convert('RGB')
        width, height = tile['width'], tile['height']
        assert min(width, height) >= min_tile and width >= 2 * source.width, (width, height)
        # the image as the grid upscales it, to compare the drawing with
        reference = np.asarray(source.resize((width, height), Image.BICUBIC), dtype=np.int32)
        crop = picture[tile['y']:tile['y'] + height, tile['x']:tile['x'] + width]
        changed = np.abs(crop - reference).sum(-1) > 30
        for x1, y1, x2, y2 in tile['boxes']:
            outline = np.concatenate([changed[y1, x1:x2 + 1], changed[y2, x1:x2 + 1],
                                      changed[y1:y2 + 1, x1], changed[y1:y2 + 1, x2]])
            assert outline.mean() > 0.5, (tile['image'], (x1, y1, x2, y2))
        far = np.ones(changed.shape, dtype=bool)
        for x1, y1, x2, y2 in tile['boxes']:
            far[max(y1 - 3, 0):y2 + 4, max(x1 - 3, 0):x2 + 4] = False
        for x1, y1, x2, y2 in tile['label_boxes']:
            assert y2 - y1 >= min_label_height, (tile['image'], tile['texts'])
            assert changed[y1:y2, x1:x2].mean() > 0.5  # a filled label background
            far[max(y1 - 1, 0):y2 + 2, max(x1 - 1, 0):x2 + 2] = False
        assert changed[far].mean() < 0.02, tile['image']


def _shapes_image(path):
    """A 128-px image with a square at (20, 20)-(60, 60) and a disc at (70, 70)-(110, 110)."""
    image = Image.new('RGB', (128, 128), (90, 110, 100))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 60, 60), fill=(200, 60, 200))
    draw.ellipse((70, 70, 110, 110), fill=(240, 200, 40))
    image.save(path)
    return path


def _predictions():
    masks = np.zeros((4, 128, 128), dtype=bool)
    masks[0, 20:61, 20:61] = True
    yy, xx = np.mgrid[:128, :128]
    masks[1] = (yy - 90) ** 2 + (xx - 90) ** 2 <= 20 ** 2
    masks[2] = masks[0]
    masks[3, 5:15, 100:120] = True
    return dict(bboxes=np.array([[20, 20, 60, 60], [70, 70, 110, 110], [20, 20, 60, 60],
                                 [100, 5, 120, 15]], dtype=np.float64),
                scores=np.array([0.97, 0.88, 0.51, 0.12]),  # the last one is below 0.3
                labels=np.array([2, 0, 1, 0]), masks=masks)


def test_grid_of_upscaled_tiles_with_legible_labels(tmp_path):
    image = _shapes_image(str(tmp_path / 'shapes.png'))
    samples = [dict(image=image, pred=_predictions(), caption='truth: 1 circle, 1 rectangle'),
               dict(image=image, pred=_predictions())]
    out = tmp_path / 'grid.png'
    info = draw_grid(samples, str(out), CLASSES, score_thr=0.3, tile_size=384, cols=3,
                     title='toy predictions')

    picture = Image.open(out)
    assert picture.size == (info['width'], info['height'])
    assert info['width'] >= 2 * 384 and info['height'] >= 384
    tiles = info['tiles']
    assert [(t['width'], t['height'], t['scale']) for t in tiles] == [(384, 384, 3.0)] * 2
    assert tiles[0]['x'] + 384 <= tiles[1]['x']  # side by side in one row
    for tile in tiles:
        assert tile['image'] == image
        # highest score first; the 0.12 box is left out
        assert tile['texts'] == ['rectangle 0.97', 'circle 0.88', 'triangle 0.51']
        assert tile['boxes'] == [[60, 60, 180, 180], [210, 210, 330, 330], [60, 60, 180, 180]]
        labels = tile['label_boxes']
        for i, a in enumerate(labels):  # two boxes at one place: their labels still keep apart
            for b in labels[i + 1:]:
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
        # the best label sits inside the top of its box
        x1, y1, x2, y2 = labels[0]
        assert 60 <= x1 < 70 and 60 <= y1 < 70
    assert_predictions_drawn(str(out), tiles)

    pixels = np.asarray(picture.convert('RGB'), dtype=np.int32)
    first = tiles[0]
    # the mask is filled: the square's centre is tinted, not the source colour
    centre = pixels[first['y'] + 120, first['x'] + 120]
    assert np.abs(centre - np.array([200, 60, 200])).sum() > 30
    # the caption is written under the first tile, none under the second
    below = slice(first['y'] + 384 + 2, tiles[0]['y'] + 384 + 16)
    assert (pixels[below, first['x']:first['x'] + 384] < 200).any()
    assert not (pixels[below, tiles[1]['x']:tiles[1]['x'] + 384] < 200).any()


def test_crowded_labels_keep_apart_or_are_left_out(tmp_path):
    image = _shapes_image(str(tmp_path / 'shapes.png'))
    scores = np.linspace(0.9, 0.35, 12)
    pred = dict(bboxes=np.tile([[20.0, 20.0, 60.0, 60.0]], (12, 1)), scores=scores,
                labels=np.arange(12) % 3, masks=None)  # boxes only, as a detector without masks
    info = draw_grid([dict(image=image, pred=pred)], str(tmp_path / 'crowd.png'), CLASSES,
                     palette='random')  # a palette mmdet may carry: the default colours instead
    tile = info['tiles'][0]
    assert len(tile['boxes']) == 12
    # four places around one box: the four best scores get them, the rest stay unlabelled
    assert tile['texts'] == ['circle 0.90', 'triangle 0.85', 'rectangle 0.80', 'circle 0.75']
    labels = tile['label_boxes']
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    assert_predictions_drawn(info['path'], [tile], min_width=384)
    # one guess per object: the boxes at one place reduce to the best one
    info = draw_grid([dict(image=image, pred=pred)], str(tmp_path / 'best.png'), CLASSES,
                     best_of_iou=0.5)
    assert info['tiles'][0]['texts'] == ['circle 0.90'] and len(info['tiles'][0]['boxes']) == 1
