"""The toy COCO generator (tools/dev/make_toy_coco.py): determinism, COCO validity, masks that match
the drawn pixels, boxes that match the masks, and loading through mmdet's CocoDataset."""
import filecmp
import json
import os
import os.path as osp
import sys

import numpy as np
import pytest
from PIL import Image

import make_toy_coco as toy  # tools/dev (on sys.path: conftest)
from conftest import ROOT, run_tool

PARAMS = dict(num_train=8, num_val=3, size=(112, 144), seed=7, max_objects=4, num_classes=4,
              empty_fraction=0.25)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return toy.make_toy_coco(str(tmp_path_factory.mktemp('toy')), **PARAMS)


def _coco(ann_file):
    from pycocotools.coco import COCO
    return COCO(ann_file)


def _listing(root):
    out = []
    for d, _, files in os.walk(root):
        out += [osp.relpath(osp.join(d, f), root) for f in files if not f.startswith('.')]
    return sorted(out)


def test_class_names():
    assert toy.class_names(3) == toy.CLASSES == ('circle', 'triangle', 'rectangle')
    assert toy.class_names(5) == toy.ALL_CLASSES
    meta = toy.metainfo(4)
    assert meta['classes'] == toy.ALL_CLASSES[:4] and len(meta['palette']) == 4
    with pytest.raises(ValueError):
        toy.class_names(len(toy.ALL_CLASSES) + 1)


def test_layout_and_return_value(dataset):
    root = dataset['root']
    assert dataset['classes'] == toy.class_names(4)
    assert dataset['train_ann'] == osp.join(root, 'annotations', 'instances_train.json')
    assert dataset['val_ann'] == osp.join(root, 'annotations', 'instances_val.json')
    assert len(os.listdir(dataset['train_img_dir'])) == PARAMS['num_train']
    assert len(os.listdir(dataset['val_img_dir'])) == PARAMS['num_val']
    assert osp.isfile(osp.join(root, toy.STAMP_NAME))
    im = Image.open(osp.join(dataset['train_img_dir'], '000001.png'))
    assert im.mode == 'RGB' and im.size == (144, 112)  # (W, H)


def test_deterministic_and_idempotent(tmp_path, dataset):
    small = dict(PARAMS, num_train=3, num_val=2)
    a = toy.make_toy_coco(str(tmp_path / 'a'), **small)
    b = toy.make_toy_coco(str(tmp_path / 'b'), **small)
    assert a['generated'] and b['generated']
    files = _listing(a['root'])
    assert files == _listing(b['root'])
    match, mismatch, errors = filecmp.cmpfiles(a['root'], b['root'], files, shallow=False)
    assert not mismatch and not errors
    # The first images of a split do not depend on the split's size.
    assert filecmp.cmp(osp.join(a['train_img_dir'], '000002.png'),
                       osp.join(dataset['train_img_dir'], '000002.png'), shallow=False)

    # Same parameters again: nothing is rewritten.
    mtime = os.stat(a['train_ann']).st_mtime_ns
    again = toy.make_toy_coco(str(tmp_path / 'a'), **small)
    assert not again['generated'] and os.stat(a['train_ann']).st_mtime_ns == mtime

    # Another seed: other images, regenerated in place, stale files removed.
    c = toy.make_toy_coco(str(tmp_path / 'a'), **dict(small, seed=8, num_train=2))
    assert c['generated']
    assert sorted(os.listdir(c['train_img_dir'])) == ['000001.png', '000002.png']
    with open(c['train_ann']) as f1, open(b['train_ann']) as f2:
        assert json.load(f1)['annotations'] != json.load(f2)['annotations']


def test_valid_coco(dataset):
    for split, n in (('train', PARAMS['num_train']), ('val', PARAMS['num_val'])):
        coco = _coco(dataset[f'{split}_ann'])
        assert len(coco.getImgIds()) == n
        cats = coco.loadCats(coco.getCatIds())
        assert [c['id'] for c in cats] == [1, 2, 3, 4]
        assert tuple(c['name'] for c in cats) == dataset['classes']
        num_empty = sum(1 for i in coco.getImgIds() if not coco.getAnnIds(imgIds=i))
        assert num_empty == round(PARAMS['empty_fraction'] * n)
        for img in coco.loadImgs(coco.getImgIds()):
            assert (img['height'], img['width']) == (112, 144)
            assert osp.isfile(osp.join(dataset['root'], split, img['file_name']))
            assert len(coco.getAnnIds(imgIds=img['id'])) <= PARAMS['max_objects']
        anns = coco.loadAnns(coco.getAnnIds())
        assert len({a['id'] for a in anns}) == len(anns)
        for ann in anns:
            assert ann['iscrowd'] == 0
            assert isinstance(ann['segmentation'], list) and len(ann['segmentation']) == 1
            poly = ann['segmentation'][0]
            assert len(poly) >= 6 and len(poly) % 2 == 0
            assert ann['area'] == pytest.approx(toy.polygon_area(poly), abs=0.01)
            x, y, w, h = ann['bbox']
            assert 0 <= x and 0 <= y and x + w <= 144 and y + h <= 112
            # Large objects: 15-45 % of the shorter side (shape extent, up to rotation).
            assert max(w, h) >= 0.1 * 112


def test_masks_cover_drawn_pixels(dataset):
    """annToMask of every instance matches the pixels of its colour inside its box."""
    for split in ('train', 'val'):
        coco = _coco(dataset[f'{split}_ann'])
        for img_info in coco.loadImgs(coco.getImgIds()):
            img = np.asarray(Image.open(osp.join(dataset['root'], split, img_info['file_name'])),
                             dtype=np.int16)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_info['id'])):
                mask = coco.annToMask(ann).astype(bool)
                x, y, w, h = ann['bbox']
                x0, y0 = max(int(x) - 2, 0), max(int(y) - 2, 0)
                x1, y1 = int(np.ceil(x + w)) + 3, int(np.ceil(y + h)) + 3
                near = np.abs(img - np.asarray(ann['color'])).max(axis=2) <= toy.OBJECT_NOISE
                region = np.zeros_like(mask)
                region[y0:y1, x0:x1] = near[y0:y1, x0:x1]
                assert not mask[:y0].any() and not mask[:, :x0].any()
                assert not mask[y1:].any() and not mask[:, x1:].any()
                iou = (mask & region).sum() / (mask | region).sum()
                assert iou > 0.9, (split, img_info['file_name'], ann['id'], iou)


def test_bbox_matches_mask(dataset):
    coco = _coco(dataset['train_ann'])
    anns = coco.loadAnns(coco.getAnnIds())
    assert anns
    for ann in anns:
        mask = coco.annToMask(ann)
        ys, xs = np.nonzero(mask)
        x, y, w, h = ann['bbox']
        lo, hi = np.array([xs.min(), ys.min()]), np.array([xs.max(), ys.max()]) + 1
        # The mask lies in the box (up to a pixel of rasterisation) ...
        assert (lo >= np.array([x, y]) - 1).all() and (hi <= np.array([x + w, y + h]) + 1).all()
        # ... and fills it: only the thin tips of sharp corners may miss pixel centres.
        assert (lo - np.array([x, y]) <= 2.5).all() and (np.array([x + w, y + h]) - hi <= 2.5).all()
        assert abs(mask.sum() - ann['area']) <= 0.15 * ann['area']


def test_cli(tmp_path):
    out = tmp_path / 'cli'
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'dev', 'make_toy_coco.py'), '--out', str(out),
           '--num-train', '2', '--num-val', '1', '--size', '40', '56', '--classes', '2',
           '--max-objects', '2', '--seed', '3']
    run_tool(cmd, check=True, timeout=300)
    with open(out / 'annotations' / 'instances_val.json') as f:
        val = json.load(f)
    assert [c['name'] for c in val['categories']] == ['circle', 'triangle']
    assert (val['images'][0]['height'], val['images'][0]['width']) == (40, 56)
    with open(out / toy.STAMP_NAME) as f:
        assert json.load(f)['seed'] == 3
    second = run_tool(cmd, check=True, timeout=300)
    assert 'up to date' in second.stdout


def test_mmdet_coco_dataset_loads(dataset):
    pytest.importorskip('mmcv.ops', reason="mmdet's transforms import mmcv's compiled ops: mmcv "
                        'without them (mmcv-lite) cannot load the dataset')
    from mmdet.datasets import CocoDataset
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)

    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='PackDetInputs'),
    ]
    common = dict(data_root=dataset['root'], metainfo=dataset['metainfo'], pipeline=pipeline)
    train = CocoDataset(ann_file='annotations/instances_train.json',
                        data_prefix=dict(img='train/'),
                        filter_cfg=dict(filter_empty_gt=True, min_size=4), **common)
    coco = _coco(dataset['train_ann'])
    non_empty = [i for i in coco.getImgIds() if coco.getAnnIds(imgIds=i)]
    assert len(train) == len(non_empty)
    assert train.metainfo['classes'] == dataset['classes']
    for idx in range(len(train)):
        sample = train[idx]['data_samples']
        info = train.get_data_info(idx)
        gt = sample.gt_instances
        assert len(gt) == len(info['instances']) > 0
        assert tuple(sample.img_shape) == (112, 144)
        masks = gt.masks.to_ndarray()
        assert masks.shape == (len(gt), 112, 144) and masks.reshape(len(gt), -1).any(1).all()
        assert gt.labels.min() >= 0 and gt.labels.max() < len(dataset['classes'])

    val = CocoDataset(ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                      test_mode=True, **common)
    assert len(val) == PARAMS['num_val']  # images without objects are kept for testing
    assert val[0]['inputs'].shape == (3, 112, 144)
