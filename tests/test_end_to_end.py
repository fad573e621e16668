"""End to end, as the README's demo: toy dataset -> tools/train.py -> tools/test.py -> picture."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT

ITERS = 300
# Well below the scores the README's "Demo" section reports for these 300 iterations (an untrained
# model scores 0): runs are not bit-reproducible.
MAP50_FLOORS = {'coco/bbox_mAP_50': 0.45, 'coco/segm_mAP_50': 0.45}


@pytest.mark.slow
def test_train_evaluate_and_draw(tmp_path):
    summary_file = tmp_path / 'summary.json'
    env = dict(os.environ, OMP_NUM_THREADS='2')
    res = subprocess.run(
        [sys.executable, 'tools/dev/run_demo.py', '--work-dir', str(tmp_path / 'work'),
         '--data-root', str(tmp_path / 'toy'), '--iters', str(ITERS), '--summary', str(summary_file)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads(summary_file.read_text())

    assert os.path.isfile(summary['checkpoint'])
    assert summary['checkpoint'].endswith(f'iter_{ITERS}.pth')
    metrics = summary['metrics']
    print('toy val metrics:', {k: round(v, 3) for k, v in metrics.items() if 'mAP' in k})
    for key, floor in MAP50_FLOORS.items():
        assert metrics[key] >= floor, (key, metrics[key])

    # The picture shows the predicted boxes: every box drawn changes the pixels on its outline.
    preds = summary['preds']
    drawn = [b for b, s in zip(preds['bboxes'], preds['scores']) if s > preds['score_thr']]
    assert preds['num_above_thr'] == len(drawn) >= 1
    source = np.asarray(Image.open(summary['image']).convert('RGB'), dtype=np.int32)
    picture = np.asarray(Image.open(summary['png']).convert('RGB'), dtype=np.int32)
    assert picture.shape == source.shape
    changed = np.abs(picture - source).sum(-1) > 30
    for x1, y1, x2, y2 in drawn:
        x1, y1 = int(np.clip(x1, 0, source.shape[1] - 1)), int(np.clip(y1, 0, source.shape[0] - 1))
        x2, y2 = int(np.clip(x2, 0, source.shape[1] - 1)), int(np.clip(y2, 0, source.shape[0] - 1))
        outline = np.concatenate([changed[y1, x1:x2 + 1], changed[y2, x1:x2 + 1],
                                  changed[y1:y2 + 1, x1], changed[y1:y2 + 1, x2]])
        assert outline.mean() > 0.5, (x1, y1, x2, y2)
    # ... and leaves the image alone far from any box (nothing else is drawn)
    far = np.ones(changed.shape, dtype=bool)
    for x1, y1, x2, y2 in drawn:
        far[max(int(y1) - 12, 0):int(y2) + 3, max(int(x1) - 3, 0):int(x2) + 40] = False
    assert changed[far].mean() < 0.02
