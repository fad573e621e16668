#!/usr/bin/env python
"""Run a detector on one image and draw its predictions to a PNG (mmdet's ``DetInferencer``).

    python tools/demo.py IMAGE CONFIG [--weights CKPT] [--out-dir DIR] [--pred-score-thr 0.3]
                         [--device cpu]

Writes ``DIR/vis/<image name>.png`` (predictions above the threshold drawn by mmdet's
``DetLocalVisualizer``) and ``DIR/preds/<image name>.json`` (all predictions), and prints the
PNG's path and the number of predictions above the threshold. ``--pred-score-thr`` is the name
mmdet's ``demo/image_demo.py`` gives the threshold; the former ``--score-thr`` still works.

From python::

    from demo import run_demo  # tools/ on sys.path, or run from tools/
    png, preds = run_demo('img.png', 'configs/x.py', 'work_dirs/x/epoch_12.pth', 'outputs', 0.3)

Without ``--weights`` the model is randomly initialised (unless the config sets ``load_from``
or the backbone loads pretrained weights), which only checks that the pipeline runs.
"""
import json
import os
import os.path as osp

from hiera_mm_tools.demo import build_inferencer  # it registers hiera_mm's modules into mmdet


def run_demo(image, config, weights=None, out_dir='outputs/demo', score_thr=0.3, device=None,
             inferencer=None):
    """Predict on ``image`` and draw the predictions scoring above ``score_thr``.

    Args:
        image: image path (or an HxWx3 BGR array, as mmcv reads images).
        config: config file path or ``mmengine.Config``.
        weights: checkpoint path, or None for the model's own initialisation.
        out_dir: the PNG goes to ``out_dir/vis/``, the predictions to ``out_dir/preds/``.
        score_thr: drawing / counting threshold.
        device: e.g. ``'cpu'``, ``'cuda:0'``; None picks CUDA when available.
        inferencer: reuse a :func:`build_inferencer` result (then config/weights/device unused).

    Returns:
        ``(png_path, predictions)``: predictions is mmdet's dict for the image (``labels``,
        ``scores``, ``bboxes`` and, for instance segmentation, RLE ``masks``) with
        ``num_above_thr``, ``score_thr`` and ``class_names`` added.
    """
    import numpy as np
    from PIL import Image

    if inferencer is None:
        inferencer = build_inferencer(config, weights, device)
    if isinstance(image, str):
        stem = osp.splitext(osp.basename(image))[0]
    else:
        stem = 'image'
    result = inferencer(image, return_vis=True, no_save_vis=True, no_save_pred=True,
                        pred_score_thr=score_thr)
    preds = dict(result['predictions'][0])
    vis = result['visualization'][0]  # RGB

    vis_dir, pred_dir = osp.join(out_dir, 'vis'), osp.join(out_dir, 'preds')
    os.makedirs(vis_dir, exist_ok=True)
    os.makedirs(pred_dir, exist_ok=True)
    png_path = osp.join(vis_dir, stem + '.png')
    Image.fromarray(np.ascontiguousarray(vis, dtype=np.uint8)).save(png_path)

    scores = np.asarray(preds.get('scores', []), dtype=np.float64)
    # mmdet's visualizer draws the instances whose score is strictly above the threshold.
    preds['num_above_thr'] = int((scores > score_thr).sum())
    preds['score_thr'] = float(score_thr)
    preds['class_names'] = list(inferencer.model.dataset_meta.get('classes', ()))
    with open(osp.join(pred_dir, stem + '.json'), 'w') as f:
        json.dump(preds, f)
    return png_path, preds


def parse_args(argv=None):
    import argparse
    p = argparse.ArgumentParser(description='Draw a detector\'s predictions on an image')
    p.add_argument('image', help='image file')
    p.add_argument('config', help='config file')
    p.add_argument('--weights', help='checkpoint file (default: no checkpoint)')
    p.add_argument('--out-dir', default='outputs/demo', help='output directory')
    p.add_argument('--pred-score-thr', '--score-thr', type=float, default=0.3,
                   help='score threshold (--score-thr: the former name)')
    p.add_argument('--device', default=None, help='device, e.g. cpu or cuda:0 (default: auto)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    png, preds = run_demo(args.image, args.config, args.weights, args.out_dir,
                          args.pred_score_thr, args.device)
    names = preds['class_names']
    print(f'predictions above {args.pred_score_thr}: {preds["num_above_thr"]}')
    for label, score in zip(preds.get('labels', []), preds.get('scores', [])):
        if score > args.pred_score_thr:
            name = names[label] if label < len(names) else str(label)
            print(f'  {name}: {score:.3f}')
    print(f'visualisation written to {png}')
    return png, preds


if __name__ == '__main__':
    main()
