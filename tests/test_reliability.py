"""Training reliability through tools/train.py: resuming after SIGKILL, checkpoints torn by a kill
during the write, the crash safety of hiera_mm's AtomicCheckpointHook, trusted checkpoint loading
under torch >= 2.6, stopping at a NaN loss, and images without annotations.

The end-to-end tests train a RetinaNet Hiera config cut down to run on a CPU core (one block per
Hiera stage, narrow neck and head, 64 px toy images, one image per batch) in subprocesses, as a
user would. Test-only hooks (snapshot of the state training starts from, images seen per iteration,
a NaN at a given iteration, a SIGKILL half-way through a checkpoint write) live in a small module
written into the test's tmp dir and imported through the config's ``custom_imports``.
"""
import json
import os
import os.path as osp
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, Tool, run_tool, write_tiny_retinanet_config

TRAIN = osp.join(ROOT, 'tools', 'train.py')
NUM_TRAIN = 3  # does not divide the iteration counts, so a wrong data position shows
RUN_TIMEOUT = 400

HELPERS = r'''
"""Test-only hooks for tests/test_reliability.py."""
import json
import os
import signal

import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook

from mmdet.registry import HOOKS


def _unwrap(model):
    return model.module if hasattr(model, 'module') else model


@HOOKS.register_module()
class RecordHook(Hook):
    """Saves the state training starts from (after loading / resuming) as start_iter<N>.pth and
    appends the images of every iteration to record.jsonl."""

    def before_train(self, runner):
        torch.save(dict(iter=runner.iter, state_dict=_unwrap(runner.model).state_dict(),
                        optimizer=runner.optim_wrapper.state_dict()),
                   os.path.join(runner.work_dir, f'start_iter{runner.iter}.pth'))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        rec = dict(pid=os.getpid(), iter=runner.iter + 1,
                   img_ids=[int(s.img_id) for s in data_batch['data_samples']])
        with open(os.path.join(runner.work_dir, 'record.jsonl'), 'a') as f:
            f.write(json.dumps(rec) + '\n')


@HOOKS.register_module()
class NanAtIterHook(Hook):
    """Makes the forward pass of iteration ``at`` (1-based) produce NaN: a real divergence, not
    a doctored log."""

    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            with torch.no_grad():
                _unwrap(runner.model).backbone.trunk.patch_embed.proj.bias.fill_(float('nan'))


@HOOKS.register_module()
class KillDuringCheckpointWriteHook(Hook):
    """SIGKILLs the process half-way through writing the checkpoint ``filename`` or its
    temporary file ``filename.tmp`` (the bytes written so far reach the disk, as with a real
    kill). Only once per work dir."""

    def __init__(self, filename):
        self.filename = filename

    def before_train(self, runner):
        marker = os.path.join(runner.work_dir, 'killed_during_write')
        if os.path.exists(marker):
            return
        name, put = self.filename, LocalBackend.put

        def torn_put(backend, obj, filepath):
            if os.path.basename(str(filepath)) in (name, name + '.tmp'):
                open(marker, 'w').close()
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            return put(backend, obj, filepath)

        LocalBackend.put = torn_put
'''


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def make_dataset(root, **kwargs):
    from make_toy_coco import make_toy_coco
    params = dict(num_train=NUM_TRAIN, num_val=1, size=64)
    params.update(kwargs)
    return make_toy_coco(str(root), **params)


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp('toy'))


def write_config(folder, data_root, max_iters=8, interval=2, max_keep_ckpts=-1, hooks=()):
    """A tiny RetinaNet Hiera config plus the test-only helper module."""
    return write_tiny_retinanet_config(folder, data_root, 'reliability_helpers', HELPERS,
                                       max_iters=max_iters, checkpoint_interval=interval,
                                       max_keep_ckpts=max_keep_ckpts, hooks=hooks)


def env_for(folder):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(folder), ROOT] + (
        [env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    return env


def train(cfg, work_dir, *args, timeout=RUN_TIMEOUT):
    """tools/train.py in a subprocess; returns (returncode, stdout + stderr)."""
    res = run_tool([sys.executable, TRAIN, cfg, '--work-dir', str(work_dir), *args],
                   cwd=osp.dirname(cfg), env=env_for(osp.dirname(cfg)), stderr=subprocess.STDOUT,
                   timeout=timeout)
    return res.returncode, res.stdout


def tail(log, n=4000):
    return log[-n:]


def logged_iters(log):
    return [int(i) for i in re.findall(r'Iter\(train\) \[\s*(\d+)/\d+\]', log)]


def records(work_dir):
    path = osp.join(work_dir, 'record.jsonl')
    if not osp.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load_full(path):
    # The test's own files: a full (pickled) load is fine here.
    return torch.load(path, map_location='cpu', weights_only=False)


def last_checkpoint(work_dir):
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


def assert_same_tensors(a, b, what):
    assert a.keys() == b.keys(), what
    for k in a:
        assert torch.equal(a[k], b[k]), f'{what}: {k} differs'


def adam_steps(optim_state):
    return {int(s['step']) for s in optim_state['state'].values()}


# ---------------------------------------------------------------------------------------------
# resume after SIGKILL
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_after_sigkill_continues_where_the_checkpoint_left_off(tmp_path, toy):
    max_iters = 8
    cfg = write_config(tmp_path, toy['root'], max_iters=max_iters, interval=2,
                       hooks=[dict(type='RecordHook')])
    work = tmp_path / 'work'
    log_path = tmp_path / 'killed.log'
    with open(log_path, 'w') as log_file:
        tool = Tool([sys.executable, TRAIN, cfg, '--work-dir', str(work)], cwd=tmp_path,
                    env=env_for(tmp_path), stdout=log_file, stderr=subprocess.STDOUT)
        proc = tool.proc
        try:
            deadline = time.time() + RUN_TIMEOUT
            while True:
                # last_checkpoint is written after the checkpoint file is complete
                named = last_checkpoint(work) or ''
                if named.endswith(('iter_2.pth', 'iter_4.pth', 'iter_6.pth')):
                    break
                if proc.poll() is not None:
                    pytest.fail(f'training ended (rc {proc.returncode}) before it could be '
                                f'killed:\n{tail(log_path.read_text())}')
                if time.time() > deadline:
                    pytest.fail('no checkpoint within the time limit:\n'
                                + tail(log_path.read_text()))
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            tool.kill()  # (what is left of) the run's process tree
    assert proc.returncode == -signal.SIGKILL
    killed_log = log_path.read_text()
    # The run may have saved once more between the poll and the kill: take what it left.
    ckpt_path = last_checkpoint(work)
    assert ckpt_path, 'last_checkpoint is empty'
    k = int(re.fullmatch(r'.*iter_(\d+)\.pth', ckpt_path).group(1))
    assert k in (2, 4, 6) and osp.dirname(ckpt_path) == str(work)
    assert not osp.exists(work / f'iter_{max_iters}.pth')
    killed = load_full(ckpt_path)
    assert killed['meta']['iter'] == k
    assert adam_steps(killed['optimizer']) == {k}

    # torch >= 2.6 refuses the training checkpoint by default (weights_only=True): resuming
    # below goes through hiera_mm.openmmlab.checkpoint_loader.load_local_checkpoint, trusted for
    # the work dir.
    from packaging.version import Version
    if Version(torch.__version__.split('+')[0]) >= Version('2.6'):
        with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
            torch.load(ckpt_path, map_location='cpu')

    rc, log = train(cfg, work, '--resume')
    assert rc == 0, tail(log)
    assert f'Auto resumed from the latest checkpoint {ckpt_path}' in log
    assert f'resumed epoch: 0, iter: {k}' in log
    assert f'Advance dataloader {k} steps' in log
    assert logged_iters(log) == list(range(k + 1, max_iters + 1)), tail(log)

    # The state training restarted from is exactly the killed run's last checkpoint.
    start = load_full(work / f'start_iter{k}.pth')
    assert start['iter'] == k
    assert_same_tensors(start['state_dict'], killed['state_dict'], 'resumed weights')
    assert adam_steps(start['optimizer']) == {k}
    for pid, state in start['optimizer']['state'].items():
        assert_same_tensors(state, killed['optimizer']['state'][pid], f'optimizer state {pid}')

    final = load_full(work / f'iter_{max_iters}.pth')
    assert final['meta']['iter'] == max_iters
    assert adam_steps(final['optimizer']) == {max_iters}  # k before the kill + the rest
    hub = final['message_hub']
    assert hub['runtime_info']['iter'] == max_iters - 1  # mmengine stores the 0-based index
    assert len(hub['log_scalars']['train/loss'].data[0]) == max_iters  # the history carried over
    assert last_checkpoint(work) == str(work / f'iter_{max_iters}.pth')

    # Data position: the resumed run saw the images an uninterrupted run would have.
    recs = records(work)
    resumed_pid = {r['pid'] for r in recs if r['iter'] > k and r['pid'] != recs[0]['pid']}
    assert len(resumed_pid) == 1, recs
    resumed = [r for r in recs if r['pid'] in resumed_pid]
    first = [r for r in recs if r['pid'] == recs[0]['pid']]
    assert [r['iter'] for r in resumed] == list(range(k + 1, max_iters + 1))
    assert [r['iter'] for r in first][:k] == list(range(1, k + 1)), killed_log[-2000:]
    for r in first[:k] + resumed:
        assert r['img_ids'] == [(r['iter'] - 1) % NUM_TRAIN + 1], r


# ---------------------------------------------------------------------------------------------
# a kill during a checkpoint write (hiera_mm's configs declare AtomicCheckpointHook)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def torn_run(tmp_path_factory, toy):
    """A run SIGKILLed half-way through writing iter_4.pth (iter_2.pth complete)."""
    folder = tmp_path_factory.mktemp('torn')
    cfg = write_config(folder, toy['root'], max_iters=6, interval=2, hooks=[
        dict(type='RecordHook'), dict(type='KillDuringCheckpointWriteHook', filename='iter_4.pth')])
    work = folder / 'work'
    rc, log = train(cfg, work)
    assert rc == -signal.SIGKILL, tail(log)
    assert osp.exists(work / 'killed_during_write')
    return dict(cfg=cfg, work=work, log=log)


@pytest.mark.slow
def test_resume_skips_a_checkpoint_torn_by_a_kill(torn_run):
    work, cfg = torn_run['work'], torn_run['cfg']
    assert 'AtomicCheckpointHook' in torn_run['log']  # the hook the config declares
    # The kill tore the temporary file; iter_4.pth itself was never created.
    torn = work / 'iter_4.pth.tmp'
    with pytest.raises(RuntimeError, match='failed finding central directory'):
        torch.load(torn, map_location='cpu', weights_only=False)
    assert not osp.exists(work / 'iter_4.pth')
    assert last_checkpoint(work) == str(work / 'iter_2.pth')
    complete = load_full(work / 'iter_2.pth')

    rc, log = train(cfg, work, '--resume')
    assert rc == 0, tail(log)
    assert f'Auto resumed from the latest checkpoint {work / "iter_2.pth"}' in log
    assert 'resumed epoch: 0, iter: 2' in log
    assert logged_iters(log) == [3, 4, 5, 6]
    start = load_full(work / 'start_iter2.pth')
    assert_same_tensors(start['state_dict'], complete['state_dict'], 'resumed weights')
    # the torn temporary file was overwritten and renamed to a complete iter_4.pth
    assert not osp.exists(torn)
    for it in (4, 6):
        ckpt = load_full(work / f'iter_{it}.pth')
        assert ckpt['meta']['iter'] == it and adam_steps(ckpt['optimizer']) == {it}


@pytest.mark.slow
def test_kill_during_write_with_max_keep_ckpts_1_keeps_a_checkpoint(tmp_path, toy):
    # mmengine's CheckpointHook deletes iter_2.pth before writing iter_4.pth: nothing is left.
    cfg = write_config(tmp_path, toy['root'], max_iters=4, interval=2, max_keep_ckpts=1, hooks=[
        dict(type='KillDuringCheckpointWriteHook', filename='iter_4.pth')])
    work = tmp_path / 'work'
    rc, log = train(cfg, work)
    assert rc == -signal.SIGKILL and osp.exists(work / 'killed_during_write'), tail(log)
    assert last_checkpoint(work) == str(work / 'iter_2.pth')
    assert load_full(work / 'iter_2.pth')['meta']['iter'] == 2
    assert osp.isfile(work / 'iter_4.pth.tmp') and not osp.exists(work / 'iter_4.pth')


# ---------------------------------------------------------------------------------------------
# what a kill or power loss could break, read off the file-system calls of a run
# ---------------------------------------------------------------------------------------------
def crash_faults(calls):
    """Faults in the order of ``calls`` (write / fsync / replace / remove) on checkpoints and
    last_checkpoint. A file is *committed* once written under a temporary name, fsynced, renamed
    over its name and its directory fsynced: only then does it survive a power loss whole."""
    faults, synced, renamed, committed, texts, pointer = [], set(), {}, set(), {}, None
    for kind, path, *rest in calls:
        name = osp.basename(path)
        if kind == 'write':
            if not name.endswith('.tmp'):
                faults.append(f'{name} written in place')
                committed.discard(path)
            synced.discard(path)
            texts[path] = rest[0]
        elif kind == 'fsync' and rest[0]:  # a directory: the renames in it are now durable
            for dst in [p for p in renamed if osp.dirname(p) == path]:
                committed.add(dst)
                text = renamed.pop(dst)
                if osp.basename(dst) == 'last_checkpoint':
                    if text not in committed:
                        faults.append(f'last_checkpoint named {osp.basename(text)} before it '
                                      'was committed')
                    pointer = text
        elif kind == 'fsync':
            synced.add(path)
        elif kind == 'replace':
            dst = rest[0]
            if path not in synced:
                faults.append(f'{osp.basename(dst)} renamed from an unsynced file')
            renamed[dst] = texts.get(path)
        elif kind == 'remove' and name.startswith('best_'):
            if not any(osp.basename(p).startswith('best_') and p != path for p in committed):
                faults.append(f'{name} removed before a newer best checkpoint was committed')
        elif kind == 'remove' and (pointer == path or pointer not in committed):
            faults.append(f'{name} removed while last_checkpoint named no other committed file')
    if pointer is None:
        faults.append('last_checkpoint never committed')
    return faults


def run_toy_training(work, hook, monkeypatch):
    """A 6-iteration mmengine Runner (2 parameters) with ``hook`` as its checkpoint hook and a
    validation every 2 iterations scoring 0.1, 0.5, 0.3. Returns the traced file-system calls
    under ``work``."""
    from mmengine.evaluator import BaseMetric
    from mmengine.fileio.backends import LocalBackend
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Model(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.linear(inputs)
            return dict(loss=out.pow(2).mean()) if mode == 'loss' else [out]

    class Scores(BaseMetric):
        def __init__(self):
            super().__init__()
            self.scores = iter([0.1, 0.5, 0.3])

        def process(self, data_batch, data_samples):
            self.results.append(0)

        def compute_metrics(self, results):
            return dict(acc=next(self.scores))

    calls, root = [], str(work)

    def trace(kind, path, *rest):
        path = osp.realpath(path)
        if path.startswith(root) and (osp.isdir(path) or re.fullmatch(
                r'.*\.pth(\.tmp)?|last_checkpoint(\.tmp)?', osp.basename(path))):
            calls.append((kind, path, *rest))

    def traced(kind, func, record):
        def wrapper(*args, **kwargs):
            trace(kind, *record(*args))
            return func(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(LocalBackend, 'put', traced(
        'write', LocalBackend.put, lambda self, obj, path: (path, None)))
    monkeypatch.setattr(LocalBackend, 'put_text', traced(
        'write', LocalBackend.put_text, lambda self, obj, path, *a: (path, osp.realpath(obj))))
    monkeypatch.setattr(os, 'fsync', traced('fsync', os.fsync, lambda fd: (
        os.readlink(f'/proc/self/fd/{fd}'), osp.isdir(f'/proc/self/fd/{fd}'))))
    monkeypatch.setattr(os, 'replace', traced(
        'replace', os.replace, lambda src, dst: (src, osp.realpath(dst))))
    monkeypatch.setattr(os, 'remove', traced('remove', os.remove, lambda path: (path,)))

    data = torch.utils.data.DataLoader([dict(inputs=torch.ones(2))] * 4, batch_size=1)
    runner = Runner(
        model=Model(), work_dir=root, experiment_name=f'{type(hook).__name__}_{work.parent.name}',
        default_scope='mmdet', train_dataloader=data, val_dataloader=data, val_cfg=dict(),
        val_evaluator=[Scores()], optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=6, val_interval=2),
        default_hooks=dict(checkpoint=hook))
    runner.train()
    return calls


@pytest.mark.skipif(not osp.isdir('/proc/self/fd'), reason='traces file descriptors via /proc')
def test_checkpoint_writes_survive_a_kill_or_power_loss_at_any_point(tmp_path, monkeypatch):
    from mmengine.hooks import CheckpointHook

    from hiera_mm.mmdet import AtomicCheckpointHook
    options = dict(by_epoch=False, interval=2, max_keep_ckpts=1, save_best='acc', rule='greater')

    work = tmp_path / 'mmengine'
    faults = set(crash_faults(run_toy_training(work, CheckpointHook(**options), monkeypatch)))
    # mmengine 0.10.7's faults, for the record (the checker can see them)
    assert {'iter_2.pth written in place', 'last_checkpoint never committed',
            'iter_2.pth removed while last_checkpoint named no other committed file',
            'best_acc_iter_2.pth removed before a newer best checkpoint was committed'} <= faults

    work = tmp_path / 'atomic'
    calls = run_toy_training(work, AtomicCheckpointHook(**options), monkeypatch)
    assert crash_faults(calls) == []
    removed = [osp.basename(path) for kind, path, *_ in calls if kind == 'remove']
    assert removed == ['iter_2.pth', 'best_acc_iter_2.pth', 'iter_4.pth']
    assert last_checkpoint(work) == str(work / 'iter_6.pth')
    assert load_full(work / 'iter_6.pth')['meta']['iter'] == 6
    assert load_full(work / 'best_acc_iter_4.pth')['meta']['iter'] == 4
    assert sorted(f for f in os.listdir(work) if re.fullmatch(r'[a-z_]+(_\d+\.pth)?', f)) == [
        'best_acc_iter_4.pth', 'iter_6.pth', 'last_checkpoint']  # no .tmp files left


# ---------------------------------------------------------------------------------------------
# trusted checkpoint loading (torch >= 2.6)
# ---------------------------------------------------------------------------------------------
class _Payload:
    """Unpickling this creates a folder: shows whether untrusted pickles get executed."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_training_checkpoint_outside_trusted_locations_is_refused(tmp_path, monkeypatch):
    from mmengine.logging import MessageHub
    from mmengine.runner import CheckpointLoader

    import hiera_mm.mmdet  # noqa: F401  (installs the loader)
    from hiera_mm.openmmlab import checkpoint_loader as compat
    monkeypatch.setattr(compat, '_TRUSTED_CHECKPOINT_LOCATIONS', set())
    hub = MessageHub.get_instance('test_reliability_hub')
    hub.update_scalar('train/loss', 1.0)
    run = tmp_path / 'run'
    run.mkdir()
    training = run / 'iter_2.pth'
    torch.save(dict(meta=dict(iter=2), state_dict=dict(w=torch.ones(2)),
                    message_hub=hub.state_dict()), training)
    with pytest.raises(RuntimeError, match=re.escape(f"'{training}' holds Python objects besides "
                                                     'tensors') + '.*--resume PATH'):
        CheckpointLoader.load_checkpoint(str(training))

    # plain tensors (what tools/model_converters/convert_weights.py writes) load from anywhere
    plain = tmp_path / 'weights.pth'
    torch.save(dict(state_dict=dict(w=torch.arange(3.0))), plain)
    assert torch.equal(CheckpointLoader.load_checkpoint(str(plain))['state_dict']['w'],
                       torch.arange(3.0))

    # a pickle that runs code is never unpickled outside the trusted locations
    marker = tmp_path / 'payload_ran'
    evil = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, x=_Payload(str(marker))), evil)
    with pytest.raises(RuntimeError, match='holds Python objects besides tensors'):
        CheckpointLoader.load_checkpoint(str(evil))
    assert not marker.exists()

    # trusting the folder (what tools/train.py does for its work dir) admits the file ...
    compat.trust_checkpoint_location(str(run))
    assert CheckpointLoader.load_checkpoint(str(training))['meta']['iter'] == 2
    # ... but not a sibling sharing the prefix, nor a link inside it pointing outside
    sibling = tmp_path / 'run2'
    sibling.mkdir()
    shutil.copy(training, sibling / 'iter_2.pth')
    with pytest.raises(RuntimeError, match='holds Python objects besides tensors'):
        CheckpointLoader.load_checkpoint(str(sibling / 'iter_2.pth'))
    os.symlink(evil, run / 'link.pth')
    with pytest.raises(RuntimeError, match='holds Python objects besides tensors'):
        CheckpointLoader.load_checkpoint(str(run / 'link.pth'))
    assert not marker.exists()
    # a single trusted file (--resume PATH, load_from) is admitted alone
    other = tmp_path / 'other.pth'
    shutil.copy(training, other)
    compat.trust_checkpoint_location(str(other))
    assert CheckpointLoader.load_checkpoint(str(other))['meta']['iter'] == 2


def test_missing_checkpoint_names_the_file(tmp_path):
    from mmengine.runner import CheckpointLoader

    import hiera_mm.mmdet  # noqa: F401  (registers into mmdet)
    missing = tmp_path / 'nope' / 'iter_4.pth'
    with pytest.raises(FileNotFoundError, match=re.escape(f'{missing} can not be found')):
        CheckpointLoader.load_checkpoint(str(missing))


# ---------------------------------------------------------------------------------------------
# NaN loss
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_nan_loss_stops_training_before_its_checkpoint(tmp_path, toy):
    cfg = write_config(tmp_path, toy['root'], max_iters=5, interval=1,
                       hooks=[dict(type='NanAtIterHook', at=3)])
    work = tmp_path / 'work'
    rc, log = train(cfg, work)
    assert rc != 0, tail(log)
    assert re.search(r'FloatingPointError: non-finite loss at iteration 3: .*loss=nan', log), \
        tail(log)
    assert 'no checkpoint was written for this iteration' in log
    assert logged_iters(log) == [1, 2]
    ckpts = sorted(f for f in os.listdir(work) if f.endswith('.pth'))
    assert ckpts == ['iter_1.pth', 'iter_2.pth']
    assert last_checkpoint(work) == str(work / 'iter_2.pth')
    state = load_full(work / 'iter_2.pth')['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


# ---------------------------------------------------------------------------------------------
# images without annotations
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_images_without_annotations_are_skipped(tmp_path):
    data = make_dataset(tmp_path / 'data', num_train=4, empty_fraction=0.5)
    with open(data['train_ann']) as f:
        coco = json.load(f)
    annotated = sorted({a['image_id'] for a in coco['annotations']})
    assert len(annotated) == 2 and len(coco['images']) == 4

    from mmengine.config import Config

    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg_path = write_config(tmp_path, data['root'], max_iters=3, interval=1000,
                            hooks=[dict(type='RecordHook')])
    cfg = Config.fromfile(cfg_path, import_custom_modules=False)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(dataset) == len(annotated)
    assert sorted(dataset.get_data_info(i)['img_id'] for i in range(len(dataset))) == annotated

    work = tmp_path / 'work'
    rc, log = train(cfg_path, work)
    assert rc == 0, tail(log)
    assert logged_iters(log) == [1, 2, 3]
    seen = [r['img_ids'] for r in records(work)]
    assert seen == [[annotated[0]], [annotated[1]], [annotated[0]]]


def test_train_set_without_any_annotation_fails_at_build(tmp_path):
    """Every image filtered out: building the dataset fails at once (mmengine's message, which
    does not say why), instead of training starting and InfiniteSampler spinning forever on an
    empty index list."""
    from mmengine.config import Config

    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    data = make_dataset(tmp_path / 'data', num_train=2, empty_fraction=1.0)
    cfg = Config.fromfile(write_config(tmp_path, data['root']), import_custom_modules=False)
    with pytest.raises(ValueError, match='need at least one array to concatenate'):
        DATASETS.build(cfg.train_dataloader.dataset).full_init()
