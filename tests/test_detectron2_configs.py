"""Every Detectron2 LazyConfig under configs/detectron2/ (found by glob: a new one must be added to
EXPECTED below): it loads by file path with relative imports, says what its recipe says, builds,
and trains one step through its own data pipeline.

To run on a CPU in seconds the step uses the backbone cut to one block per stage (widths, heads
and attention layout kept), random init, the toy shapes dataset, a 128 px canvas instead of 1024
(LSJ) / 1333 (multi-scale), two images and fewer RoIs; the optimizer is the config's, so the
per-block lr decay is checked on the shrunk model, and at full depth for the MAE configs (built on
the 'meta' device: the parameter groups without weights or compute).

Without Detectron2 every test here is skipped, each naming the reason.
"""
import glob
import math
import os

import pytest
import torch

from conftest import (HAVE_DETECTRON2, HIERA_PAPER, IMAGENET_MEAN, IMAGENET_STD, ROOT,
                      needs_detectron2)

if HAVE_DETECTRON2:  # a broken install fails here instead of skipping
    from detectron2.config import LazyConfig, instantiate
    from detectron2.data import DatasetCatalog
    from detectron2.data.datasets import register_coco_instances
    from detectron2.layers.batch_norm import LayerNorm as D2LayerNorm
    from detectron2.modeling.roi_heads import CascadeROIHeads, StandardROIHeads
    from detectron2.utils.events import EventStorage

CONFIG_DIR = os.path.join(ROOT, 'configs', 'detectron2')
# Bases are not configs; yacs/ holds YAML configs of another kind.
SKIP_DIRS = {'_base_', 'yacs'}
CONFIGS = sorted(
    path for path in glob.glob(os.path.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    if not SKIP_DIRS & set(os.path.relpath(path, CONFIG_DIR).split(os.sep)))
CONFIG_IDS = [os.path.relpath(path, CONFIG_DIR) for path in CONFIGS]

COCO_TRAIN_IMAGES = 118000  # the count ViTDet's and MViTv2's schedules are written for
MAE = 'https://dl.fbaipublicfiles.com/hiera/mae_hiera_{}_224.pth'
SAM21 = 'https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_{}.pt'

# What makes each config what it is.
LSJ = dict(recipe='lsj', epochs=100, batch=64, amp=True, optimizer='AdamW', lr=1e-4)
MS3X = dict(recipe='3x', epochs=36, batch=64, amp=True, optimizer='AdamW', lr=1.6e-4, decay=None)
EXPECTED = {
    'mask_rcnn_hiera_b_100ep.py': dict(LSJ, arch='base', decay=0.83, heads='mask',
                                       init=MAE.format('base')),
    'mask_rcnn_hiera_b_plus_100ep.py': dict(LSJ, arch='base_plus', decay=0.83, heads='mask',
                                            init=MAE.format('base_plus')),
    'mask_rcnn_hiera_l_100ep.py': dict(LSJ, arch='large', decay=0.89, heads='mask',
                                       init=MAE.format('large')),
    'cascade_mask_rcnn_hiera_b_100ep.py': dict(LSJ, arch='base', decay=0.83, heads='cascade',
                                               init=MAE.format('base')),
    'cascade_mask_rcnn_hiera_b_plus_100ep.py': dict(LSJ, arch='base_plus', decay=0.83,
                                                    heads='cascade', init=MAE.format('base_plus')),
    'cascade_mask_rcnn_hiera_l_100ep.py': dict(LSJ, arch='large', decay=0.89, heads='cascade',
                                               init=MAE.format('large')),
    'mask_rcnn_hiera_t_3x.py': dict(MS3X, arch='tiny', heads='mask',
                                    init='hf://facebook/hiera-tiny-224-hf'),
    'mask_rcnn_hiera_s_3x.py': dict(MS3X, arch='small', heads='mask',
                                    init='hf://facebook/hiera-small-224-hf'),
    'mask_rcnn_sam21_hiera_t_3x.py': dict(MS3X, arch='sam2.1_tiny', heads='mask',
                                          init=SAM21.format('tiny')),
    'mask_rcnn_sam21_hiera_b_plus_3x.py': dict(MS3X, arch='sam2.1_base_plus', heads='mask',
                                               init=SAM21.format('base_plus')),
    os.path.join('toy', 'mask_rcnn_hiera_t_toy.py'): dict(
        recipe='toy', arch='tiny', heads='mask', decay=None, init='', batch=4, amp=False,
        optimizer='AdamW', lr=4e-4),
}
CANVAS = 128
TOY_TRAIN = 'd2test_toy_train'


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """Tiny detectors run many small ops; a second thread per process gains little on a shared
    2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def toy_train(tmp_path_factory):
    """A few toy shape images (128 px) registered as a Detectron2 COCO dataset."""
    from make_toy_coco import make_toy_coco

    info = make_toy_coco(str(tmp_path_factory.mktemp('d2toy')), num_train=4, num_val=1,
                         size=(128, 128), min_objects=2)
    if TOY_TRAIN in DatasetCatalog.list():
        DatasetCatalog.remove(TOY_TRAIN)
    register_coco_instances(TOY_TRAIN, {}, info['train_ann'], info['train_img_dir'])
    yield TOY_TRAIN
    DatasetCatalog.remove(TOY_TRAIN)


def load(config_id):
    return LazyConfig.load(os.path.join(CONFIG_DIR, config_id))


def stage_ends(depths):
    return [sum(depths[:i + 1]) - 1 for i in range(len(depths))]


def expected_lr_factor(name, rate, depths):
    """Independent statement of the per-block decay: layer 0 = patch/position embeddings, block
    g = layer g + 1, a stage's out norm = one above its last block, L + 1 = the rest; factor
    rate ** (L + 1 - layer); 1 outside the backbone."""
    num = sum(depths)
    prefix = 'backbone.bottom_up.'
    if not name.startswith(prefix):
        return 1.0
    rest = name[len(prefix):]
    if rest.startswith(('trunk.patch_embed.', 'trunk.pos_embed')):
        layer = 0
    elif rest.startswith('trunk.blocks.'):
        layer = int(rest.split('.')[2]) + 1
    elif rest.startswith('out_norms.stage'):
        layer = min(stage_ends(depths)[int(rest.split('.')[1][len('stage'):]) - 1] + 2, num + 1)
    else:
        layer = num + 1
    return rate ** (num + 1 - layer)


def check_param_groups(model, groups, base_lr, rate, depths):
    """Every trainable parameter is in one group whose lr is base_lr x its block's factor."""
    lr_of = {}
    for group in groups:
        for p in group['params']:
            assert id(p) not in lr_of
            lr_of[id(p)] = group['lr'], group.get('weight_decay')
    seen_blocks = set()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr, wd = lr_of[id(p)]
        factor = 1.0 if rate is None else expected_lr_factor(name, rate, depths)
        assert lr == pytest.approx(base_lr * factor, rel=1e-9), name
        if name.endswith('trunk.pos_embed'):
            assert wd == 0.0, name
        if '.trunk.blocks.' in name:
            seen_blocks.add(int(name.split('.trunk.blocks.')[1].split('.')[0]))
    assert seen_blocks == set(range(sum(depths)))


# ---------------------------------------------------------------------------------------------
def test_every_config_is_described():
    assert set(CONFIG_IDS) == set(EXPECTED), (
        'configs/detectron2 and EXPECTED differ: describe new configs in this test')


@needs_detectron2
def test_configs_load_after_a_pip_install(tmp_path):
    """Relative imports resolve beside the file: a copy of the folder elsewhere (as in the wheel's
    hiera_mm/.mim/configs/detectron2) loads the same."""
    import shutil

    copy = tmp_path / 'detectron2'
    shutil.copytree(CONFIG_DIR, copy)
    moved = LazyConfig.load(str(copy / 'cascade_mask_rcnn_hiera_l_100ep.py'))
    here = load('cascade_mask_rcnn_hiera_l_100ep.py')
    assert LazyConfig.to_py(moved) == LazyConfig.to_py(here)


@needs_detectron2
@pytest.mark.parametrize('config_id', CONFIG_IDS)
def test_recipe(config_id):
    cfg = load(config_id)
    want = EXPECTED[config_id]
    bottom_up = cfg.model.backbone.bottom_up
    assert bottom_up.arch == want['arch']
    assert cfg.model.backbone.in_features == ['stage1', 'stage2', 'stage3', 'stage4']
    # Hiera's input: RGB, ImageNet statistics on the 0-255 scale.
    assert cfg.model.input_format == 'RGB' == cfg.dataloader.train.mapper.image_format
    assert list(cfg.model.pixel_mean) == IMAGENET_MEAN
    assert list(cfg.model.pixel_std) == IMAGENET_STD
    assert cfg.train.init_checkpoint == want['init']
    assert cfg.train.amp.enabled is want['amp']
    assert cfg.dataloader.train.total_batch_size == want['batch']
    assert cfg.optimizer._target_.__name__ == want['optimizer']
    assert cfg.optimizer.lr == want['lr']
    assert cfg.optimizer.params.overrides['pos_embed'] == {'weight_decay': 0.0}

    if want['recipe'] in ('lsj', '3x'):
        epochs = cfg.train.max_iter * cfg.dataloader.train.total_batch_size / COCO_TRAIN_IMAGES
        assert abs(epochs - want['epochs']) < 1, epochs
        assert cfg.train.ddp.fp16_compression is True
        # the lr steps come near the end of the schedule (epoch ~89 and ~96 of 100, ~28 and ~34
        # of 36), after a 250-iteration warm-up
        milestones = cfg.lr_multiplier.scheduler.milestones
        assert 0.75 < milestones[0] / cfg.train.max_iter < milestones[1] / cfg.train.max_iter < 1
        assert cfg.lr_multiplier.warmup_length * cfg.train.max_iter == pytest.approx(250)

    decay = cfg.optimizer.params.get('lr_factor_func')
    if want['decay'] is None:
        assert decay is None
    else:
        # per block of this config's own arch, at the paper's rate
        assert decay.keywords == {'arch': want['arch'], 'lr_decay_rate': want['decay']}

    augs = [a._target_.__name__ for a in cfg.dataloader.train.mapper.augmentations]
    if want['recipe'] == 'lsj':
        assert augs == ['RandomFlip', 'ResizeScale', 'FixedSizeCrop']
        resize, crop = cfg.dataloader.train.mapper.augmentations[1:]
        assert (resize.min_scale, resize.max_scale) == (0.1, 2.0)
        assert resize.target_height == resize.target_width == 1024
        assert tuple(crop.crop_size) == (1024, 1024)
        assert cfg.dataloader.train.mapper.recompute_boxes is True
        assert cfg.model.backbone.square_pad == 1024 == bottom_up.square_pad
        # LN in the FPN and the RoI heads, ViTDet's 4conv1fc box head, 2-conv RPN head
        assert cfg.model.backbone.norm == 'LN'
        assert cfg.model.roi_heads.mask_head.conv_norm == 'LN'
        box_heads = (cfg.model.roi_heads.box_heads if want['heads'] == 'cascade'
                     else [cfg.model.roi_heads.box_head])
        for head in box_heads:
            assert head.conv_norm == 'LN'
            assert list(head.conv_dims) == [256] * 4 and list(head.fc_dims) == [1024]
        assert list(cfg.model.proposal_generator.head.conv_dims) == [-1, -1]
    else:
        assert cfg.model.backbone.get('square_pad', 0) == 0
        assert bottom_up.get('square_pad', 0) == 0
    if want['recipe'] == '3x':
        assert augs == ['RandomApply', 'ResizeShortestEdge', 'RandomFlip']
        assert bottom_up.drop_path_rate > 0
    if want['heads'] == 'cascade':
        assert cfg.model.roi_heads._target_ is CascadeROIHeads
        assert [m.thresholds for m in cfg.model.roi_heads.proposal_matchers] == [
            [0.5], [0.6], [0.7]]
    else:
        assert cfg.model.roi_heads._target_ is StandardROIHeads


@needs_detectron2
@pytest.mark.parametrize('config_id', [c for c in CONFIG_IDS if EXPECTED[c]['recipe'] == 'lsj'
                                       and EXPECTED[c]['heads'] == 'mask'])
def test_layer_decay_at_full_depth(config_id):
    """The real B / B+ / L detector: the optimizer's groups decay the lr block by block (24 or 48
    Hiera blocks), e.g. the embeddings of Hiera-B at 0.83 ** 25 of the lr, FPN and heads at 1."""
    cfg = load(config_id)
    want = EXPECTED[config_id]
    with torch.device('meta'):
        model = instantiate(cfg.model)
    cfg.optimizer.params.model = model
    groups = instantiate(cfg.optimizer.params)
    depths = HIERA_PAPER[want['arch']]['depths']
    check_param_groups(model, groups, want['lr'], want['decay'], depths)
    lr_of = {id(p): g['lr'] for g in groups for p in g['params']}
    named = dict(model.named_parameters())
    num = sum(depths)
    embed = named['backbone.bottom_up.trunk.patch_embed.proj.weight']
    last = named[f'backbone.bottom_up.trunk.blocks.{num - 1}.mlp.fc1.weight']
    assert lr_of[id(embed)] == pytest.approx(want['lr'] * want['decay'] ** (num + 1))
    assert lr_of[id(last)] == pytest.approx(want['lr'] * want['decay'])
    assert lr_of[id(named['backbone.fpn_output2.weight'])] == want['lr']


def shrink(cfg, dataset):
    """One block per stage, a 128 px canvas, two images of the toy data, fewer RoIs."""
    from hiera_mm.archs import check_arch  # the config's own arch, cut down
    bottom_up = cfg.model.backbone.bottom_up
    settings = dict(check_arch(bottom_up.arch))
    settings['depths'] = (1, 1, 1, 1)
    if settings.get('global_blocks'):
        settings['global_blocks'] = (2,)  # the one stage-3 block (SAM2's are deeper)
    bottom_up.arch = settings
    decay = cfg.optimizer.params.get('lr_factor_func')
    if decay is not None:  # same rate, the shrunk backbone's blocks
        cfg.optimizer.params.lr_factor_func = type(decay)(
            decay.func, *decay.args, **dict(decay.keywords, arch=settings))
    if cfg.model.backbone.get('square_pad'):
        cfg.model.backbone.square_pad = bottom_up.square_pad = CANVAS
    scale = CANVAS / 1024 if cfg.model.backbone.get('square_pad') else CANVAS / 1333

    def small(value):
        return max(32, int(round(value * scale)))

    def walk(node):
        if hasattr(node, 'items'):
            for key, value in list(node.items()):
                if key in ('target_height', 'target_width', 'max_size'):
                    node[key] = min(small(value), CANVAS)
                elif key in ('short_edge_length', 'crop_size'):
                    node[key] = ([min(small(v), CANVAS) for v in value]
                                 if isinstance(value, (list, tuple)) or hasattr(value, '__len__')
                                 else min(small(value), CANVAS))
                else:
                    walk(value)
        elif isinstance(node, (list, tuple)) or type(node).__name__ == 'ListConfig':
            for item in node:
                walk(item)

    walk(cfg.dataloader.train.mapper.augmentations)
    cfg.dataloader.train.dataset.names = dataset
    cfg.dataloader.train.total_batch_size = 2
    cfg.dataloader.train.num_workers = 0
    cfg.model.proposal_generator.pre_nms_topk = (400, 200)
    cfg.model.proposal_generator.post_nms_topk = (100, 50)
    cfg.model.roi_heads.batch_size_per_image = 16
    cfg.train.init_checkpoint = ''
    return settings['depths']


@needs_detectron2
@pytest.mark.parametrize('config_id', CONFIG_IDS)
def test_one_training_step(config_id, toy_train):
    cfg = load(config_id)
    want = EXPECTED[config_id]
    depths = shrink(cfg, toy_train)
    torch.manual_seed(0)
    model = instantiate(cfg.model).train()
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    check_param_groups(model, optimizer.param_groups, want['lr'], want['decay'], depths)

    # LayerNorm where the recipe puts it (detectron2's channels-first LN)
    lsj = want['recipe'] == 'lsj'
    heads = model.roi_heads
    box_heads = heads.box_head if want['heads'] == 'cascade' else [heads.box_head]
    for part in [model.backbone.fpn_lateral2, *box_heads, heads.mask_head]:
        has_ln = any(isinstance(m, D2LayerNorm) for m in part.modules())
        assert has_ln is lsj, (type(part).__name__, has_ln)
    if lsj:
        assert model.backbone.padding_constraints['square_size'] == CANVAS

    batch = next(iter(instantiate(cfg.dataloader.train)))
    assert len(batch) == 2 and all(max(d['image'].shape[1:]) <= CANVAS for d in batch)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with EventStorage(0):
        losses = model(batch)
    assert {'loss_cls', 'loss_box_reg', 'loss_mask', 'loss_rpn_cls', 'loss_rpn_loc'} <= {
        k.rsplit('_stage', 1)[0] for k in losses}
    loss = sum(losses.values())
    assert math.isfinite(loss.item())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    for name in ('backbone.bottom_up.trunk.patch_embed.proj.weight',
                 'backbone.bottom_up.trunk.blocks.3.attn.qkv.weight',
                 'backbone.bottom_up.out_norms.stage4.weight', 'backbone.fpn_output2.weight',
                 'roi_heads.mask_head.predictor.weight'):
        assert name in changed, name

    # and it predicts, with masks, in image coordinates
    model.eval()
    image = batch[0]['image']
    with torch.no_grad():
        out = model([{'image': image, 'height': 100, 'width': 90}])[0]['instances']
    assert out.image_size == (100, 90)
    assert out.has('pred_masks') and out.pred_masks.shape[1:] == (100, 90)
