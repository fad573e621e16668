#!/usr/bin/env python
"""The README's main job (``make demo``): Hiera-T Mask R-CNN trained and evaluated end to end.

1. makes the toy shapes dataset (tools/dev/make_toy_coco.py) under data/toy_coco;
2. trains configs/toy/mask-rcnn_hiera-t_fpn_toy.py with tools/train.py, from the real IN1K
   weights when they are in the local Hugging Face cache, otherwise from random init (said so);
3. evaluates the checkpoint with tools/test.py (mmdet's CocoMetric: bbox and segm AP);
4. draws the predictions for nine validation images, upscaled, to one PNG grid
   (work_dir/vis/val_predictions.png; hiera_mm_tools.demo).
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

CONFIG = osp.join(ROOT, 'configs/toy/mask-rcnn_hiera-t_fpn_toy.py')
PRETRAINED = 'facebook/hiera-tiny-224-hf'
# Dataset of the demo (and of the end-to-end test): big shapes, 128 px, quick to learn.
TOY_DATA = dict(num_train=200, num_val=32, size=128, max_objects=3, min_scale=0.25, max_scale=0.55)
# The picture: this many validation images (3 a row), predictions scoring above SCORE_THR,
# the best one of boxes overlapping by BEST_OF_IOU or more (whatever their classes).
GRID_IMAGES = 9
SCORE_THR = 0.3
BEST_OF_IOU = 0.3


def pretrained_in_cache(repo_id: str = PRETRAINED) -> bool:
    """True when the hub weights can be loaded offline from the local HF cache."""
    from huggingface_hub import snapshot_download
    try:
        snapshot_download(repo_id, local_files_only=True, allow_patterns=['*.safetensors', '*.json'])
        return True
    except Exception:
        return False


def run(cmd):
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs/demo'))
    parser.add_argument('--data-root', default=osp.join(ROOT, 'data/toy_coco'))
    parser.add_argument('--iters', type=int, default=None, help='override the schedule length')
    parser.add_argument('--summary', help='also write the results as JSON to this file')
    args = parser.parse_args(argv)

    from make_toy_coco import make_toy_coco
    data = make_toy_coco(args.data_root, verbose=True, **TOY_DATA)
    root = data['root'] + '/'
    options = [f'train_dataloader.dataset.data_root={root}',
               f'val_dataloader.dataset.data_root={root}',
               f'test_dataloader.dataset.data_root={root}',
               f'val_evaluator.ann_file={data["val_ann"]}',
               f'test_evaluator.ann_file={data["val_ann"]}']
    if pretrained_in_cache():
        print(f'Initialising Hiera-T from the cached IN1K weights hf://{PRETRAINED}.')
    else:
        print(f'hf://{PRETRAINED} is not in the local Hugging Face cache (and the hub is not '
              'reachable here): training from random init. To use the real weights, run '
              f'`huggingface-cli download {PRETRAINED}` on a machine with internet and copy '
              'the cache (~/.cache/huggingface) here.')
        options.append('model.backbone.init_cfg=None')
    if args.iters:
        options += [f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={args.iters}',
                    f'default_hooks.checkpoint.interval={args.iters}',
                    f'param_scheduler.1.end={args.iters}']

    # tools/test.py evaluates the final checkpoint below; no second evaluation inside training.
    train_options = options + ['val_cfg=None', 'val_dataloader=None', 'val_evaluator=None']
    py = sys.executable
    start = time.time()
    run([py, 'tools/train.py', CONFIG, '--work-dir', args.work_dir, '--cfg-options', *train_options])
    train_time = time.time() - start
    checkpoint = osp.join(args.work_dir, open(osp.join(args.work_dir, 'last_checkpoint')).read().strip()) \
        if osp.exists(osp.join(args.work_dir, 'last_checkpoint')) else \
        sorted(glob.glob(osp.join(args.work_dir, 'iter_*.pth')), key=osp.getmtime)[-1]
    test_dir = osp.join(args.work_dir, 'test')
    run([py, 'tools/test.py', CONFIG, checkpoint, '--work-dir', test_dir, '--cfg-options', *options])
    metrics = latest_metrics(test_dir)

    png, grid = draw_predictions(checkpoint, data, metrics, osp.join(args.work_dir, 'vis'))
    total = time.time() - start
    print('\n==== hiera_mm demo ====')
    print(f'training: {train_time / 60:.1f} min; total with evaluation and drawing: {total / 60:.1f} min')
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        print(f'{key}: {metrics.get(key, float("nan")):.3f}')
    found = sum(len(t['boxes']) for t in grid['tiles'])
    print(f'predictions on {len(grid["tiles"])} val images ({found} boxes drawn) '
          f'drawn to {png} ({grid["width"]}x{grid["height"]} px)')
    summary = dict(metrics=metrics, png=png, checkpoint=checkpoint, score_thr=SCORE_THR,
                   best_of_iou=BEST_OF_IOU,
                   width=grid['width'], height=grid['height'], tiles=grid['tiles'],
                   classes=grid['classes'],
                   train_time_s=train_time, total_time_s=total)
    if args.summary:
        with open(args.summary, 'w') as f:
            json.dump(summary, f)
    return summary


def ground_truth(ann_file):
    """File name -> 'ground truth: 1 circle, 2 rectangles' (classes in category order)."""
    with open(ann_file) as f:
        coco = json.load(f)
    names = {c['id']: c['name'] for c in coco['categories']}
    counts = {img['id']: {} for img in coco['images']}
    for ann in coco['annotations']:
        per_image = counts[ann['image_id']]
        per_image[ann['category_id']] = per_image.get(ann['category_id'], 0) + 1
    captions = {}
    for img in coco['images']:
        parts = [f'{n} {names[c]}' + ('s' if n > 1 else '')
                 for c, n in sorted(counts[img['id']].items())]
        captions[img['file_name']] = 'ground truth: ' + (', '.join(parts) or 'nothing')
    return captions


def draw_predictions(checkpoint, data, metrics, out_dir):
    """The demo's picture: the first GRID_IMAGES validation images, upscaled, in a grid with
    the predictions scoring above SCORE_THR drawn (the best of overlapping boxes) and the ground
    truth under each image."""
    from hiera_mm_tools.demo import build_inferencer, draw_grid, predict
    inferencer = build_inferencer(CONFIG, checkpoint)
    meta = inferencer.model.dataset_meta
    truth = ground_truth(data['val_ann'])
    images = sorted(glob.glob(osp.join(data['val_img_dir'], '*.png')))[:GRID_IMAGES]
    samples = [dict(image=p, pred=predict(inferencer, p),
                    caption=truth[osp.basename(p)]) for p in images]
    iters = re.search(r'iter_(\d+)', osp.basename(checkpoint))
    title = (f'Hiera-T Mask R-CNN{f", {iters.group(1)} iters" if iters else ""}: toy val '
             f'bbox mAP {metrics.get("coco/bbox_mAP", float("nan")):.2f}, '
             f'segm mAP {metrics.get("coco/segm_mAP", float("nan")):.2f}; '
             f'best box per object > {SCORE_THR}')
    png = osp.join(out_dir, 'val_predictions.png')
    grid = draw_grid(samples, png, meta['classes'], meta.get('palette'), SCORE_THR, title=title,
                     best_of_iou=BEST_OF_IOU)
    for tile, sample in zip(grid['tiles'], samples):  # what was predicted, for the summary
        tile['pred'] = {k: sample['pred'][k].tolist() for k in ('bboxes', 'scores', 'labels')}
    grid['classes'] = list(meta['classes'])
    return png, grid


def latest_metrics(test_dir):
    """Metrics of the last tools/test.py run, from the json mmengine writes beside its log."""
    files = sorted(glob.glob(osp.join(test_dir, '*', '*.json')), key=osp.getmtime)
    if not files:
        raise RuntimeError(f'no metrics written under {test_dir}')
    with open(files[-1]) as f:
        return json.loads(f.read().strip().splitlines()[-1])


if __name__ == '__main__':
    os.environ.setdefault('OMP_NUM_THREADS', '2')
    main()
