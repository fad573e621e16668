"""hiera_mm.detectron2: the backbone, HieraCheckpointer (every layout, detector checkpoints,
hf://), the lr factor function, yacs configs, and the separation from the OpenMMLab stack (the
last test, which needs mmdet but not Detectron2, also runs without Detectron2)."""
import logging
import os
import shutil
import sys
import textwrap
from functools import partial

import pytest
import torch

from conftest import (HAVE_DETECTRON2, IMAGENET_MEAN, IMAGENET_STD, ROOT, needs_detectron2,
                      randomize_, run_tool)
from hiera_mm.checkpoints import CheckpointError
from hiera_mm.models import HieraStages
from hiera_mm.models.hiera import build_hiera

if HAVE_DETECTRON2:  # a broken install fails here instead of skipping
    from detectron2.config import LazyCall as L
    from detectron2.config import instantiate
    from detectron2.layers import ShapeSpec
    from detectron2.structures import BitMasks, Boxes, Instances
    from detectron2.utils.events import EventStorage
    from detectron2.utils.file_io import PathManager

    from hiera_mm.detectron2 import (HieraBackbone, HieraCheckpointer, get_hiera_cfg,
                                     get_hiera_lr_decay_rate)

# Shrunk archs (same structure as 'tiny' / 'sam2_tiny', a fraction of the compute).
SMALL = dict(embed_dim=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8))
SMALL_SAM2 = dict(SMALL, window_sizes=(8, 4, 14, 7), global_blocks=(2, 4), pos_embed='abs_win',
                  pos_embed_size=(7, 7))
FEATURES = ['stage1', 'stage2', 'stage3', 'stage4']
YACS = os.path.join(ROOT, 'configs', 'detectron2', 'yacs', 'mask_rcnn_hiera_t_fpn_1x.yaml')


def mask_rcnn(arch=SMALL, **backbone):
    """Detectron2's model-zoo Mask R-CNN (LazyConfig) with the ResNet replaced by Hiera."""
    from detectron2 import model_zoo
    model = model_zoo.get_config('common/models/mask_rcnn_fpn.py').model
    model.backbone.bottom_up = L(HieraBackbone)(arch=arch, **backbone)
    model.backbone.in_features = FEATURES
    model.roi_heads.num_classes = 3
    model.pixel_mean, model.pixel_std, model.input_format = IMAGENET_MEAN, IMAGENET_STD, 'RGB'
    shrink_heads(model)
    torch.manual_seed(0)
    return instantiate(model)


def shrink_heads(model, width=64):
    """Narrow neck and heads, few proposals: the same modules at a fraction of the CPU time."""
    model.backbone.out_channels = width
    model.proposal_generator.head.in_channels = width
    model.proposal_generator.pre_nms_topk = (200, 200)
    model.proposal_generator.post_nms_topk = (50, 50)
    model.roi_heads.batch_size_per_image = 32
    model.roi_heads.box_head.input_shape = ShapeSpec(channels=width, height=7, width=7)
    model.roi_heads.box_head.fc_dims = [width, width]
    model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=width)
    model.roi_heads.mask_head.input_shape = ShapeSpec(channels=width, width=14, height=14)
    model.roi_heads.mask_head.conv_dims = [width, width]


def batch(size=(64, 96)):
    """Two images with one box and mask each, in Detectron2's input format."""
    gen = torch.Generator().manual_seed(1)
    out = []
    for _ in range(2):
        inst = Instances(size)
        inst.gt_boxes = Boxes(torch.tensor([[8.0, 10.0, 50.0, 48.0]]))
        inst.gt_classes = torch.tensor([1])
        mask = torch.zeros(1, *size, dtype=torch.bool)
        mask[:, 10:48, 8:50] = True
        inst.gt_masks = BitMasks(mask)
        out.append({'image': torch.randint(0, 255, (3, *size), generator=gen).float(),
                    'height': size[0], 'width': size[1], 'instances': inst})
    return out


def train_step(model, optimizer):
    model.train()
    with EventStorage():
        losses = model(batch())
    assert {'loss_cls', 'loss_box_reg', 'loss_mask', 'loss_rpn_cls'} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()


def bottom_up(model):
    return model.backbone.bottom_up


# ---------------------------------------------------------------------------------------------
# The backbone
# ---------------------------------------------------------------------------------------------
@needs_detectron2
def test_stage_maps_equal_the_core_and_openmmlab_backbones():
    from hiera_mm.openmmlab.backbone import HieraBackbone as MMHieraBackbone
    d2 = randomize_(HieraBackbone(arch=SMALL)).eval()
    core = HieraStages(arch=SMALL).eval()
    mm = MMHieraBackbone(arch=SMALL).eval()
    assert core.state_dict().keys() == d2.state_dict().keys() == mm.state_dict().keys()
    core.load_state_dict(d2.state_dict())
    mm.load_state_dict(d2.state_dict())
    x = torch.randn(2, 3, 70, 100)
    with torch.no_grad():
        maps, ref, ref_mm = d2(x), core(x), mm(x)
    assert list(maps) == FEATURES
    for name, a, b in zip(FEATURES, ref, ref_mm):
        assert torch.equal(maps[name], a) and torch.equal(maps[name], b)


@needs_detectron2
def test_output_shape_padding_and_options():
    with torch.device('meta'):  # the full-size archs' structure, without weights
        b = HieraBackbone(arch='tiny', out_indices=(1, 3))
        padded = HieraBackbone(arch='base_plus', square_pad=1024)
        shapes = HieraBackbone(arch='base_plus').output_shape()
    assert b.output_shape() == {'stage2': ShapeSpec(channels=192, stride=8),
                                'stage4': ShapeSpec(channels=768, stride=32)}
    assert b.size_divisibility == 32
    assert b.padding_constraints == {'size_divisibility': 32, 'square_size': 0}
    assert padded.padding_constraints == {'size_divisibility': 32, 'square_size': 1024}
    assert [(s.channels, s.stride) for s in shapes.values()] == [(112, 4), (224, 8), (448, 16),
                                                                 (896, 32)]
    small = HieraBackbone(arch=SMALL, out_indices=(0, 2)).eval()
    with torch.no_grad():
        out = small(torch.randn(1, 3, 70, 100))  # padded to 96 x 128 inside
    assert {k: tuple(v.shape) for k, v in out.items()} == {'stage1': (1, 32, 24, 32),
                                                           'stage3': (1, 128, 6, 8)}
    for kwargs, match in [(dict(square_pad=-1), 'square_pad must be an int >= 0'),
                          (dict(square_pad=1000), 'multiple of .* 32'),
                          (dict(out_indices=(4,)), r'out_indices \(4,\) must name stages 0\.\.3'),
                          (dict(frozen_stages=5), 'frozen_stages=5 is out of range')]:
        with pytest.raises(ValueError, match=match):
            HieraBackbone(arch=SMALL, **kwargs)


@needs_detectron2
def test_frozen_stages_stay_frozen_in_a_detector():
    model = mask_rcnn(frozen_stages=2).train()
    b = bottom_up(model)
    for name, p in b.named_parameters():
        frozen = name.startswith(('trunk.patch_embed', 'trunk.pos_embed', 'trunk.blocks.0.',
                                  'trunk.blocks.1.', 'out_norms.stage1.', 'out_norms.stage2.'))
        assert p.requires_grad != frozen, name
    assert not b.trunk.blocks[1].training and b.trunk.blocks[2].training
    assert not b.out_norms['stage2'].training and b.out_norms['stage3'].training
    before = {k: v.clone() for k, v in b.state_dict().items()}
    train_step(model, torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1))
    after = b.state_dict()
    assert torch.equal(before['trunk.blocks.1.mlp.fc1.weight'], after['trunk.blocks.1.mlp.fc1.weight'])
    assert not torch.equal(before['trunk.blocks.2.mlp.fc1.weight'],
                           after['trunk.blocks.2.mlp.fc1.weight'])


@needs_detectron2
def test_with_cp_gives_the_same_gradients():
    plain = randomize_(HieraBackbone(arch=SMALL)).train()
    cp = HieraBackbone(arch=SMALL, with_cp=True).train()
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    for m in (plain, cp):
        sum((v * (i + 1)).sum() for i, v in enumerate(m(x).values())).backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), cp.named_parameters()):
        assert a.grad is not None and torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6), name


# ---------------------------------------------------------------------------------------------
# HieraCheckpointer: backbone checkpoints in every layout
# ---------------------------------------------------------------------------------------------
def fair_like(arch):
    """Random trunk weights of ``arch`` (our trunk names are FAIR's and timm's)."""
    return randomize_(build_hiera(arch), seed=3).state_dict()


def make_source(kind, tmp_path, make_hf_checkpoint):
    """(checkpoint path, arch, a few (our trunk name, source tensor) pairs to compare)."""
    if kind in ('hf_folder', 'hf_safetensors'):
        folder, hf = make_hf_checkpoint(**SMALL)
        sd = hf.state_dict()
        pairs = [('trunk.patch_embed.proj.weight', sd['embeddings.patch_embeddings.projection.weight']),
                 ('trunk.blocks.3.mlp.fc2.weight', sd['encoder.stages.2.layers.1.mlp.fc2.weight'])]
        path = folder if kind == 'hf_folder' else os.path.join(folder, 'model.safetensors')
        return path, SMALL, pairs
    arch = SMALL_SAM2 if kind == 'sam2' else SMALL
    trunk = fair_like(arch)
    pairs = [('trunk.patch_embed.proj.weight', trunk['patch_embed.proj.weight']),
             ('trunk.blocks.3.mlp.fc2.weight', trunk['blocks.3.mlp.fc2.weight'])]
    if kind == 'sam2':
        import re
        state = {'model': {**{'image_encoder.trunk.' + re.sub(
            r'\.mlp\.fc(\d)\.', lambda m: f'.mlp.layers.{int(m[1]) - 1}.', k): v
            for k, v in trunk.items()}, 'sam_mask_decoder.iou_token.weight': torch.zeros(4, 8)}}
        path = tmp_path / 'sam2.pt'
    else:
        pos = trunk['pos_embed']
        trunk['pos_embed'] = pos.flatten(2).transpose(1, 2).contiguous()  # (1, N, C) as FAIR
        trunk['head.projection.weight'] = torch.zeros(10, 256)
        state = {'model_state': trunk} if kind == 'fair' else trunk  # timm: a bare state dict
        path = tmp_path / f'{kind}.pth'
    torch.save(state, path)
    return str(path), arch, pairs


@needs_detectron2
@pytest.mark.parametrize('kind', ['hf_folder', 'hf_safetensors', 'fair', 'timm', 'sam2'])
def test_backbone_checkpoints_load_into_mask_rcnn(kind, tmp_path, make_hf_checkpoint, caplog):
    path, arch, pairs = make_source(kind, tmp_path, make_hf_checkpoint)
    model = mask_rcnn(arch=arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.INFO):
        extra = HieraCheckpointer(model).resume_or_load(path, resume=False)
    assert 'iteration' not in extra
    ref = HieraStages(arch=arch)
    ref.load_pretrained(path)
    got = bottom_up(model).state_dict()
    for k, v in ref.trunk.state_dict().items():
        assert torch.equal(got['trunk.' + k], v), k
    for name, src in pairs:
        assert torch.equal(got[name], src), name
    # Out norms are new (not in the checkpoint) and everything outside the backbone is untouched.
    for k, v in model.state_dict().items():
        if not k.startswith('backbone.bottom_up.trunk.'):
            assert torch.equal(v, before[k]), k
    layout = {'hf_folder': 'hf', 'hf_safetensors': 'hf', 'timm': 'fair'}.get(kind, kind)
    log = caplog.text
    assert f"layout '{layout}'" in log and 'backbone.bottom_up (HieraBackbone)' in log
    assert 'Newly initialised (missing in the checkpoint): out_norms.stage1' in log
    assert 'not found in the checkpoint' in log and 'roi_heads' in log  # Detectron2's own report


@needs_detectron2
def test_wrong_arch_checkpoint_names_the_arch(tmp_path):
    torch.save({'model_state': build_hiera('tiny').state_dict()}, tmp_path / 'tiny.pth')
    model = mask_rcnn(arch='small')
    with pytest.raises(CheckpointError, match="looks like arch 'tiny' but the backbone was built "
                                              "as arch 'small': set arch='tiny'"):
        HieraCheckpointer(model).resume_or_load(str(tmp_path / 'tiny.pth'), resume=False)


@needs_detectron2
def test_other_pretraining_grid_keeps_the_parameter_and_resumes(tmp_path):
    """A checkpoint pretrained on another grid (256 px) replaces the position embedding's data
    in place: an optimizer built before loading (as Detectron2's scripts do) still trains it,
    and a detector checkpoint with that grid resumes into a freshly built model."""
    trunk = fair_like(SMALL)
    trunk['pos_embed'] = torch.randn(1, 32, 64, 64)
    torch.save(trunk, tmp_path / 'grid256.pth')
    model = mask_rcnn()
    pos = bottom_up(model).trunk.pos_embed
    assert pos.shape[-2:] != (64, 64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ckpt = HieraCheckpointer(model, str(tmp_path))
    ckpt.resume_or_load(str(tmp_path / 'grid256.pth'), resume=False)
    assert bottom_up(model).trunk.pos_embed is pos and pos.requires_grad
    assert torch.equal(pos, trunk['pos_embed'])
    assert any(p is pos for g in opt.param_groups for p in g['params'])
    train_step(model, opt)
    assert not torch.equal(pos, trunk['pos_embed'])  # trained through the optimizer
    ckpt.save('model_final')
    fresh = mask_rcnn()
    HieraCheckpointer(fresh, str(tmp_path)).resume_or_load('', resume=True)
    assert torch.equal(bottom_up(fresh).trunk.pos_embed, pos)


@needs_detectron2
def test_not_a_hiera_checkpoint_goes_to_detectron2(tmp_path, caplog):
    torch.save({'conv1.weight': torch.zeros(1)}, tmp_path / 'other.pth')
    model = mask_rcnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.WARNING):
        HieraCheckpointer(model).load(str(tmp_path / 'other.pth'))
    assert 'conv1.weight' in caplog.text  # Detectron2's "not used by the model" warning
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# ---------------------------------------------------------------------------------------------
# Detectron2's own checkpoints keep loading as Detectron2 loads them
# ---------------------------------------------------------------------------------------------
@needs_detectron2
def test_detector_checkpoint_resumes_exactly(tmp_path, make_hf_checkpoint):
    folder, _ = make_hf_checkpoint(**SMALL)
    model = mask_rcnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    ckpt = HieraCheckpointer(model, str(tmp_path), optimizer=opt, scheduler=sched)
    ckpt.resume_or_load(folder, resume=True)  # nothing to resume: loads the backbone weights
    train_step(model, opt)
    sched.step()
    ckpt.save('model_0000001', iteration=1)
    saved = torch.load(tmp_path / 'model_0000001.pth', weights_only=False)
    assert set(saved) == {'model', 'optimizer', 'scheduler', 'iteration'}
    assert 'backbone.bottom_up.trunk.blocks.0.attn.qkv.weight' in saved['model']

    model2 = mask_rcnn()
    randomize_(model2, seed=5)
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.01, momentum=0.9)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.5)
    extra = HieraCheckpointer(model2, str(tmp_path), optimizer=opt2,
                              scheduler=sched2).resume_or_load(folder, resume=True)
    assert extra == {'iteration': 1}
    want, got = model.state_dict(), model2.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert sched2.last_epoch == 1 and opt2.param_groups[0]['lr'] == pytest.approx(0.005)
    s1, s2 = opt.state_dict()['state'], opt2.state_dict()['state']
    assert s1.keys() == s2.keys() and all(
        torch.equal(s1[i]['momentum_buffer'], s2[i]['momentum_buffer']) for i in s1)

    # --eval-only / fine-tuning: resume=False reads the model only.
    model3 = mask_rcnn()
    randomize_(model3, seed=6)
    opt3 = torch.optim.SGD(model3.parameters(), lr=0.01, momentum=0.9)
    HieraCheckpointer(model3, str(tmp_path / 'other'), optimizer=opt3).resume_or_load(
        str(tmp_path / 'model_0000001.pth'), resume=False)
    assert all(torch.equal(want[k], v) for k, v in model3.state_dict().items())
    assert not opt3.state_dict()['state']

    # A model-zoo style .pkl (numpy arrays, '__author__') loads through Detectron2's path.
    import pickle
    with open(tmp_path / 'zoo.pkl', 'wb') as f:
        pickle.dump({'model': {k: v.numpy() for k, v in want.items()}, '__author__': 'test'}, f)
    model4 = mask_rcnn()
    randomize_(model4, seed=7)
    HieraCheckpointer(model4).resume_or_load(str(tmp_path / 'zoo.pkl'), resume=False)
    assert all(torch.equal(want[k], v) for k, v in model4.state_dict().items())


# ---------------------------------------------------------------------------------------------
# hf:// through Detectron2's PathManager
# ---------------------------------------------------------------------------------------------
@needs_detectron2
def test_hf_ids_through_the_path_manager(tmp_path, monkeypatch, make_hf_checkpoint):
    import huggingface_hub.constants as c
    folder, hf = make_hf_checkpoint(**SMALL)
    monkeypatch.setattr(c, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(c, 'HF_HUB_CACHE', str(tmp_path / 'empty'))
    with pytest.raises(CheckpointError, match="cannot get 'hf://facebook/hiera-tiny-224-hf'.*"
                                              'huggingface-cli download'):
        PathManager.get_local_path('hf://facebook/hiera-tiny-224-hf')
    assert not PathManager.exists('hf://facebook/hiera-tiny-224-hf')

    cache = tmp_path / 'hub'
    repo = cache / 'models--facebook--hiera-tiny-224-hf'
    snap = repo / 'snapshots' / ('1' * 40)
    snap.mkdir(parents=True)
    for name in ('config.json', 'model.safetensors'):
        shutil.copy(os.path.join(folder, name), snap / name)
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text('1' * 40)
    monkeypatch.setattr(c, 'HF_HUB_CACHE', str(cache))
    local = PathManager.get_local_path('hf://facebook/hiera-tiny-224-hf')
    assert os.path.samefile(local, snap) and PathManager.isdir('hf://facebook/hiera-tiny-224-hf')
    file = PathManager.get_local_path('hf://facebook/hiera-tiny-224-hf/model.safetensors')
    assert os.path.samefile(file, snap / 'model.safetensors')
    assert PathManager.ls('hf://facebook/hiera-tiny-224-hf') == ['config.json', 'model.safetensors']
    with PathManager.open('hf://facebook/hiera-tiny-224-hf/config.json') as f:
        assert '"embed_dim": 32' in f.read()
    with pytest.raises(CheckpointError, match="has no 'missing.bin'"):
        PathManager.get_local_path('hf://facebook/hiera-tiny-224-hf/missing.bin')

    model = mask_rcnn()
    HieraCheckpointer(model).resume_or_load('hf://facebook/hiera-tiny-224-hf', resume=False)
    assert torch.equal(bottom_up(model).trunk.patch_embed.proj.weight,
                       hf.state_dict()['embeddings.patch_embeddings.projection.weight'])


# ---------------------------------------------------------------------------------------------
# Layer-wise lr decay
# ---------------------------------------------------------------------------------------------
@needs_detectron2
def test_lr_factor_values():
    from detectron2.solver import get_default_optimizer_params
    from hiera_mm.openmmlab.layer_decay import get_hiera_layer_id
    r = 0.5
    f = partial(get_hiera_lr_decay_rate, lr_decay_rate=r, arch='tiny')  # L = 12, ends 0, 2, 9, 11
    p = 'backbone.bottom_up.'
    assert f(p + 'trunk.patch_embed.proj.weight') == r ** 13
    assert f(p + 'trunk.pos_embed') == r ** 13
    assert f(p + 'trunk.blocks.0.attn.qkv.weight') == r ** 12
    assert f('module.' + p + 'trunk.blocks.4.mlp.fc1.bias') == r ** 8
    assert f(p + 'trunk.blocks.11.norm1.weight') == r ** 1
    assert f(p + 'out_norms.stage1.weight') == r ** 11  # one above stage 1's last block
    assert f(p + 'out_norms.stage3.bias') == r ** 2
    assert f(p + 'out_norms.stage4.weight') == 1.0
    assert f('backbone.fpn_lateral2.weight') == f('roi_heads.box_predictor.cls_score.weight') == 1.0
    assert get_hiera_lr_decay_rate('backbone.trunk.blocks.0.norm1.weight', r,
                                   num_layers=12, stage_ends=(0, 2, 9, 11),
                                   prefix='backbone.') == r ** 12
    for bad, match in [(dict(), 'needs the backbone'), (dict(arch='nope'), "unknown Hiera arch"),
                       (dict(arch='tiny', lr_decay_rate=0), r'in \(0, 1\]'),
                       (dict(num_layers=12, stage_ends=(0, 2, 9)), 'does not end')]:
        with pytest.raises(ValueError, match=match):
            get_hiera_lr_decay_rate('x', **{'lr_decay_rate': r, **bad})

    # The same ids as HieraStages.layer_id and the mmdet constructor, for every parameter.
    model = mask_rcnn()
    b = bottom_up(model)
    L_ = len(b.trunk.blocks)
    g = partial(get_hiera_lr_decay_rate, lr_decay_rate=r, arch=SMALL)
    for name, _ in b.named_parameters():
        assert g(p + name) == r ** (L_ + 1 - b.layer_id(name)), name
        assert b.layer_id(name) == get_hiera_layer_id('backbone.' + name, L_, b.trunk.stage_ends)
    groups = get_default_optimizer_params(model, base_lr=1.0, lr_factor_func=g)
    lr = {id(q): grp['lr'] for grp in groups for q in grp['params']}
    assert lr[id(b.trunk.patch_embed.proj.weight)] == r ** (L_ + 1)
    assert lr[id(b.trunk.blocks[2].attn.qkv.weight)] == r ** (L_ - 2)
    assert lr[id(model.backbone.fpn_output2.weight)] == 1.0


# ---------------------------------------------------------------------------------------------
# yacs
# ---------------------------------------------------------------------------------------------
@needs_detectron2
def test_yacs_config_builds_and_trains():
    from detectron2.modeling import BACKBONE_REGISTRY, FPN, build_model
    cfg = get_hiera_cfg()
    cfg.merge_from_file(YACS)
    assert cfg.MODEL.BACKBONE.NAME == 'build_hiera_fpn_backbone'
    assert cfg.MODEL.RPN.IN_FEATURES == ['p2', 'p3', 'p4', 'p5', 'p6']  # from the model-zoo base
    assert cfg.MODEL.WEIGHTS == 'hf://facebook/hiera-tiny-224-hf' and cfg.MODEL.MASK_ON
    assert cfg.INPUT.FORMAT == 'RGB' and list(cfg.MODEL.PIXEL_MEAN) == IMAGENET_MEAN
    cfg.merge_from_list(['MODEL.DEVICE', 'cpu', 'MODEL.HIERA.EMBED_DIM', 32,
                         'MODEL.HIERA.DEPTHS', [1, 1, 2, 1], 'MODEL.HIERA.FROZEN_STAGES', 1,
                         'MODEL.ROI_HEADS.NUM_CLASSES', 3, 'MODEL.FPN.OUT_CHANNELS', 64,
                         'MODEL.ROI_BOX_HEAD.FC_DIM', 64, 'MODEL.ROI_MASK_HEAD.CONV_DIM', 64,
                         'MODEL.ROI_MASK_HEAD.NUM_CONV', 2, 'MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE',
                         32, 'MODEL.RPN.PRE_NMS_TOPK_TRAIN', 200,
                         'MODEL.RPN.POST_NMS_TOPK_TRAIN', 50])
    torch.manual_seed(0)
    model = build_model(cfg)
    assert isinstance(model.backbone, FPN) and isinstance(bottom_up(model), HieraBackbone)
    assert bottom_up(model).out_channels == [32, 64, 128, 256]
    assert not bottom_up(model).trunk.blocks[0].attn.qkv.weight.requires_grad
    before = bottom_up(model).trunk.blocks[2].attn.qkv.weight.clone()
    train_step(model, torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01))
    assert not torch.equal(before, bottom_up(model).trunk.blocks[2].attn.qkv.weight)

    # The other builders.
    retina = BACKBONE_REGISTRY.get('build_retinanet_hiera_fpn_backbone')(cfg, ShapeSpec(channels=3))
    assert {k: s.stride for k, s in retina.output_shape().items()} == {
        'p2': 4, 'p3': 8, 'p4': 16, 'p5': 32, 'p6': 64, 'p7': 128}
    bare = BACKBONE_REGISTRY.get('build_hiera_backbone')(cfg, ShapeSpec(channels=3))
    assert isinstance(bare, HieraBackbone) and list(bare.output_shape()) == FEATURES
    plain = get_hiera_cfg()
    plain.MODEL.HIERA.OUT_FEATURES = ['res5']
    with pytest.raises(ValueError, match="'res5' is not a Hiera feature name"):
        BACKBONE_REGISTRY.get('build_hiera_backbone')(plain, ShapeSpec(channels=3))
    plain.MODEL.HIERA.OUT_FEATURES = ['stage4']
    plain.MODEL.HIERA.ARCH = 'base-plus'  # the hub id's spelling, not the arch name
    with pytest.raises(ValueError, match=r"MODEL.HIERA.ARCH 'base-plus' is not a Hiera arch.*"
                                         r"'base_plus'"):
        BACKBONE_REGISTRY.get('build_hiera_backbone')(plain, ShapeSpec(channels=3))
    from detectron2.config import get_cfg
    with pytest.raises(KeyError, match='add_hiera_config'):
        BACKBONE_REGISTRY.get('build_hiera_backbone')(get_cfg(), ShapeSpec(channels=3))


# ---------------------------------------------------------------------------------------------
# Framework separation
# ---------------------------------------------------------------------------------------------
def blocker(*names):
    return textwrap.dedent(f'''
        import sys
        BLOCKED = {names!r}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in BLOCKED:
                    raise ModuleNotFoundError(f'No module named {{name!r}} (blocked)', name=name)
                return None

        sys.meta_path.insert(0, Block())
    ''')


def run_blocked(blocked, code, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = run_tool([sys.executable, '-c', blocker(*blocked) + textwrap.dedent(code)],
                    cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().endswith('ok')


@needs_detectron2
def test_detectron2_integration_needs_no_openmmlab(tmp_path):
    run_blocked(('mmcv', 'mmengine', 'mmdet', 'mmseg'), '''
        import torch
        from detectron2 import model_zoo
        from detectron2.config import LazyCall as L, instantiate
        import hiera_mm.detectron2 as hd

        cfg = model_zoo.get_config('common/models/mask_rcnn_fpn.py').model
        cfg.backbone.bottom_up = L(hd.HieraBackbone)(
            arch=dict(embed_dim=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8)))
        cfg.backbone.in_features = ['stage1', 'stage2', 'stage3', 'stage4']
        cfg.proposal_generator.post_nms_topk = (50, 50)
        model = instantiate(cfg).eval()
        with torch.no_grad():
            out = model([{'image': torch.rand(3, 64, 96) * 255, 'height': 64, 'width': 96}])
        assert 'instances' in out[0]
        loaded = {m for m in sys.modules if m.split('.')[0] in BLOCKED}
        assert not loaded, loaded
        print('ok')
    ''', tmp_path)


def test_mmdet_integration_needs_no_detectron2(tmp_path):
    run_blocked(('detectron2', 'fvcore', 'iopath'), '''
        import torch
        import hiera_mm.mmdet
        from mmdet.registry import MODELS
        backbone = MODELS.build(dict(type='HieraBackbone', arch=dict(
            embed_dim=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8)))).eval()
        with torch.no_grad():
            assert len(backbone(torch.randn(1, 3, 64, 64))) == 4
        loaded = {m for m in sys.modules if m.split('.')[0] in BLOCKED}
        assert not loaded, loaded
        print('ok')
    ''', tmp_path)
