"""End to end, as the README's demo: toy dataset -> tools/train.py -> tools/test.py -> picture."""
import json
import os
import sys

import pytest
from PIL import Image

from conftest import run_tool
from test_demo_grid import assert_predictions_drawn

ITERS = 300
# Well below the scores the README's "Demo" section reports for these 300 iterations (an untrained
# model scores 0): runs are not bit-reproducible.
MAP50_FLOORS = {'coco/bbox_mAP_50': 0.45, 'coco/segm_mAP_50': 0.45}


@pytest.mark.slow
def test_train_evaluate_and_draw(tmp_path):
    summary_file = tmp_path / 'summary.json'
    res = run_tool(
        [sys.executable, 'tools/dev/run_demo.py', '--work-dir', str(tmp_path / 'work'),
         '--data-root', str(tmp_path / 'toy'), '--iters', str(ITERS), '--summary', str(summary_file)],
        timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads(summary_file.read_text())

    assert os.path.isfile(summary['checkpoint'])
    assert summary['checkpoint'].endswith(f'iter_{ITERS}.pth')
    metrics = summary['metrics']
    print('toy val metrics:', {k: round(v, 3) for k, v in metrics.items() if 'mAP' in k})
    for key, floor in MAP50_FLOORS.items():
        assert metrics[key] >= floor, (key, metrics[key])

    assert_demo_picture(summary, str(tmp_path / 'toy' / 'val'))


def assert_demo_picture(summary, val_dir):
    """The demo's picture: the first val images, upscaled to tiles of at least 320 px in a grid
    at least 640 px wide, every predicted box above the threshold that overlaps no better one
    outlined, labels in class name and score, nothing else drawn on the images."""
    tiles = summary['tiles']
    assert len(tiles) >= 6
    assert all(os.path.dirname(t['image']) == val_dir for t in tiles)
    for tile in tiles:  # the boxes drawn are the predictions above the threshold, scaled
        pred = tile['pred']
        above = sorted((s, b, label) for s, b, label in zip(pred['scores'], pred['bboxes'],
                                                           pred['labels'])
                       if s > summary['score_thr'])[::-1]
        best = []  # one box per object: none overlaps a better one by best_of_iou or more
        for candidate in above:
            if all(_iou(candidate[1], kept[1]) < summary['best_of_iou'] for kept in best):
                best.append(candidate)
        above = best
        assert len(tile['boxes']) == len(above)
        for drawn, (_, box, _) in zip(tile['boxes'], above):
            limits = (tile['width'], tile['height']) * 2
            expected = [min(max(v * tile['scale'], 0), lim - 1) for v, lim in zip(box, limits)]
            assert max(abs(d - e) for d, e in zip(drawn, expected)) <= 1, (drawn, expected)
        if above:  # the best one is labelled with its class name and score
            score, _, label = above[0]
            assert tile['texts'][0] == f"{summary['classes'][label]} {score:.2f}"
    assert sum(len(t['boxes']) for t in tiles) >= len(tiles)
    picture = Image.open(summary['png'])
    assert picture.size == (summary['width'], summary['height'])
    assert_predictions_drawn(summary['png'], tiles, min_width=640, min_tile=320)


def _iou(a, b):
    inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
