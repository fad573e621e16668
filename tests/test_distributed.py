"""Two-process training on the CPU (``tools/dist_train.sh CONFIG 2``: torchrun, gloo, mmengine's
``pytorch`` launcher made CPU-capable by ``hiera_mm.openmmlab.cpu_launch.prepare_distributed``).

One SGD step of a tiny RetinaNet Hiera on two toy images, one per process, must give the weights
of one step with the average of the two images' gradients, computed here in a single process from
the same initial weights (``load_from``). Only rank 0 writes the checkpoint.

Test-only hooks (images and loss seen per rank, every file write per rank, a NaN on one rank) live
in a small module written into the test's tmp dir and imported through ``custom_imports``.
"""
import json
import os
import os.path as osp
import re
import socket
import subprocess

import pytest
import torch

from conftest import ROOT, run_tool, write_tiny_retinanet_config

pytestmark = pytest.mark.slow

DIST_TRAIN = osp.join(ROOT, 'tools', 'dist_train.sh')
LR = 0.01
TOL = 1e-5

HELPERS = r'''
"""Test-only hooks for tests/test_distributed.py."""
import atexit
import json
import os
import time

import torch
from mmengine.dist import get_rank
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook

from mmdet.registry import HOOKS

_put = LocalBackend.put


def _recording_put(backend, obj, filepath):
    """Every file mmengine writes through its file backend (checkpoints), per rank."""
    folder = os.path.dirname(str(filepath))
    with open(os.path.join(folder, f'puts_rank{get_rank()}.jsonl'), 'a') as f:
        f.write(json.dumps(dict(path=str(filepath), bytes=len(obj))) + '\n')
    return _put(backend, obj, filepath)


LocalBackend.put = _recording_put


def _unwrap(model):
    return model.module if hasattr(model, 'module') else model


@HOOKS.register_module()
class RecordBatchHook(Hook):
    """The images and the loss of every iteration, per rank."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        rec = dict(iter=runner.iter + 1, loss=float(outputs['loss'].detach()),
                   img_ids=[int(s.img_id) for s in data_batch['data_samples']])
        with open(os.path.join(runner.work_dir, f'seen_rank{get_rank()}.jsonl'), 'a') as f:
            f.write(json.dumps(rec) + '\n')


@HOOKS.register_module()
class NanOnRankHook(Hook):
    """Makes the forward pass of iteration ``at`` produce NaN on rank ``rank`` only. That rank
    then stays alive until rank 0 has exited (as a slow teardown or a slow launcher would)."""

    def __init__(self, rank, at):
        self.rank, self.at = rank, at

    def before_run(self, runner):
        done = os.path.join(runner.work_dir, 'rank0_exited')
        if get_rank() == 0:
            atexit.register(lambda: open(done, 'w').close())
        elif get_rank() == self.rank:
            def wait_for_rank0(deadline=time.time() + 600):
                while not os.path.exists(done) and time.time() < deadline:
                    time.sleep(0.1)
            atexit.register(wait_for_rank0)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if get_rank() == self.rank and runner.iter + 1 == self.at:
            with torch.no_grad():
                _unwrap(runner.model).backbone.trunk.patch_embed.proj.bias.fill_(float('nan'))
'''


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def write_config(folder, data_root, load_from, hooks):
    """One SGD step from ``load_from`` (a fixed init shared with the reference), checkpoint after it."""
    extra = f'''
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='SGD', lr={LR}, momentum=0.9, weight_decay=1e-4))
load_from = {str(load_from)!r}
'''
    return write_tiny_retinanet_config(folder, data_root, 'dist_helpers', HELPERS, max_iters=1,
                                       checkpoint_interval=1, hooks=hooks, extra=extra)


def dist_train(cfg, work_dir, timeout=500):
    env = dict(os.environ)
    folder = osp.dirname(cfg)
    env['PYTHONPATH'] = os.pathsep.join([folder, ROOT] + (
        [env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    env['PORT'] = str(free_port())
    env['OMP_NUM_THREADS'] = '1'
    env['PYTHON'] = env.get('PYTHON') or __import__('sys').executable
    res = run_tool(['bash', DIST_TRAIN, cfg, '2', '--work-dir', str(work_dir)], cwd=folder,
                   env=env, stderr=subprocess.STDOUT, timeout=timeout)
    return res.returncode, res.stdout


def read_jsonl(path):
    if not osp.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load_full(path):
    return torch.load(path, map_location='cpu', weights_only=False)  # the test's own file


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Two toy images, the config's detector with fixed initial weights (saved for load_from)."""
    from make_toy_coco import make_toy_coco
    from mmengine.config import Config

    import hiera_mm.mmdet  # noqa: F401  (registers into mmdet)
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    folder = tmp_path_factory.mktemp('dist')
    data = make_toy_coco(str(folder / 'data'), num_train=2, num_val=1, size=64)
    init = folder / 'init.pth'
    cfg_path = write_config(str(folder), data['root'], init, [])
    cfg = Config.fromfile(cfg_path, import_custom_modules=False)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict()}, init)  # tensors only
    return dict(folder=folder, data=data, init=init, cfg=cfg)


def reference_step(cfg, init):
    """Single process: both images' gradients from the initial weights, averaged, one step."""
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper

    from mmdet.registry import DATASETS, MODELS
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(init, weights_only=True)['state_dict'], strict=True)
    model.train()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(dataset) == 2
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    per_image = []
    for idx in range(2):
        model.zero_grad(set_to_none=True)
        data = model.data_preprocessor(pseudo_collate([dataset[idx]]), True)
        loss, _ = model.parse_losses(model(**data, mode='loss'))
        loss.backward()
        missing = [n for n, p in trainable.items() if p.grad is None]
        assert not missing, f'no gradient for {missing[:5]} (DDP would fail)'
        per_image.append(dict(img_id=dataset.get_data_info(idx)['img_id'],
                              loss=float(loss.detach()),
                              grads={n: p.grad.clone() for n, p in trainable.items()}))
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    for n, p in trainable.items():
        p.grad = (per_image[0]['grads'][n] + per_image[1]['grads'][n]) / 2
    optim_wrapper.step()
    return model.state_dict(), per_image


def test_two_processes_average_gradients_and_rank0_saves(setup, tmp_path):
    cfg = write_config(str(tmp_path), setup['data']['root'], setup['init'],
                       [dict(type='RecordBatchHook')])
    work = tmp_path / 'work'
    rc, log = dist_train(cfg, work)
    assert rc == 0, log[-6000:]
    assert 'Distributed training: True' in log
    assert f'Load checkpoint from {setup["init"]}' in log
    assert 'do not match exactly' not in log and 'missing keys' not in log

    # each rank trained on its own image (InfiniteSampler: rank r gets index r)
    seen = [read_jsonl(work / f'seen_rank{r}.jsonl') for r in (0, 1)]
    assert [[rec['iter'] for rec in s] for s in seen] == [[1], [1]], seen
    ref_weights, per_image = reference_step(setup['cfg'], setup['init'])
    for rank in (0, 1):
        assert seen[rank][0]['img_ids'] == [per_image[rank]['img_id']]
        assert seen[rank][0]['loss'] == pytest.approx(per_image[rank]['loss'], abs=1e-4)

    # exactly one checkpoint, written once, by rank 0
    assert sorted(f for f in os.listdir(work) if f.endswith('.pth')) == ['iter_1.pth']
    puts0 = read_jsonl(work / 'puts_rank0.jsonl')
    # (the config's AtomicCheckpointHook writes iter_1.pth.tmp, then renames it)
    assert [p['path'] for p in puts0] == [str(work / 'iter_1.pth.tmp')]
    assert not osp.exists(work / 'puts_rank1.jsonl'), read_jsonl(work / 'puts_rank1.jsonl')
    with open(work / 'last_checkpoint') as f:
        assert f.read().strip() == str(work / 'iter_1.pth')

    ckpt = load_full(work / 'iter_1.pth')
    assert ckpt['meta']['iter'] == 1
    weights = ckpt['state_dict']
    assert weights.keys() == ref_weights.keys()
    init = torch.load(setup['init'], weights_only=True)['state_dict']
    diff = max(float((weights[k] - ref_weights[k]).abs().max()) for k in weights)
    moved = max(float((weights[k] - init[k]).abs().max()) for k in weights)
    # averaging (not one rank's gradient, not the sum) is distinguishable at this tolerance
    g0, g1 = per_image[0]['grads'], per_image[1]['grads']
    one_rank_error = LR * max(float((g0[k] - g1[k]).abs().max()) for k in g0) / 2
    assert moved > 1e-3 and one_rank_error > 10 * TOL, (moved, one_rank_error)
    assert diff <= TOL, f'2-process step differs from the averaged reference step by {diff:.3g}'


def test_nan_on_one_rank_writes_no_checkpoint(setup, tmp_path):
    cfg = write_config(str(tmp_path), setup['data']['root'], setup['init'],
                       [dict(type='NanOnRankHook', rank=1, at=1)])
    work = tmp_path / 'work'
    rc, log = dist_train(cfg, work)
    if rc == 0 or not re.search(r'non-finite loss at iteration 1: .*loss=nan', log):
        pytest.fail(f'rank 1 did not stop at its NaN loss (rc {rc}):\n{log[-6000:]}')
    # No checkpoint of the diverged step: no file, no temporary file, no write at all, and no
    # last_checkpoint pointing at one.
    ckpt = work / 'iter_1.pth'
    if osp.exists(ckpt):
        weights = load_full(ckpt)['state_dict']
        bad = [k for k, v in weights.items() if v.is_floating_point() and not v.isfinite().all()]
        pytest.fail(f'iter_1.pth was written after the NaN (non-finite tensors: {bad[:3]})')
    assert not osp.exists(work / 'iter_1.pth.tmp')
    assert not osp.exists(work / 'last_checkpoint')
    puts = [p for r in (0, 1) for p in read_jsonl(work / f'puts_rank{r}.jsonl')]
    assert puts == [], f'checkpoint writes after the NaN: {puts}'
