"""Shared fixtures: published arch facts as literals, small Hiera checkpoints made here (no hub
access), tiny detectors, test references that must be installed, and subprocesses that end with
their test."""
import importlib
import importlib.util
import os
import signal
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
sys.path.insert(0, os.path.join(ROOT, 'tools', 'dev'))
# The normalisation Hiera was trained with, as configs must state it: the image_mean
# [0.485, 0.456, 0.406] and image_std [0.229, 0.224, 0.225] of the facebook/hiera-*-224-hf
# preprocessor_config.json (and FAIR's hiera), on the 0-255 scale of mmdet's data preprocessor.
IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]
# Hiera's image models as the paper states them (Ryali et al., "Hiera: A Hierarchical Vision
# Transformer without the Bells-and-Whistles", ICML 2023, table of model configurations): channels
# and heads of stage 1 (both double at every stage) and blocks per stage.
HIERA_PAPER = {
    'tiny': dict(embed_dim=96, num_heads=1, depths=(1, 2, 7, 2)),
    'small': dict(embed_dim=96, num_heads=1, depths=(1, 2, 11, 2)),
    'base': dict(embed_dim=96, num_heads=1, depths=(2, 3, 16, 3)),
    'base_plus': dict(embed_dim=112, num_heads=2, depths=(2, 3, 16, 3)),
    'large': dict(embed_dim=144, num_heads=2, depths=(2, 6, 36, 4)),
    'huge': dict(embed_dim=256, num_heads=4, depths=(2, 6, 36, 4)),
}
# SAM 2 / SAM 2.1's released image-encoder trunks (sam2/configs/sam2.1/sam2.1_hiera_{t,s,b+,l}.yaml,
# keys left out there take the defaults of sam2.modeling.backbones.hieradet.Hiera), in SAM2's names.
SAM2_RELEASED = {
    'tiny': dict(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9),
                 window_spec=(8, 4, 14, 7), window_pos_embed_bkg_spatial_size=(7, 7)),
    'small': dict(embed_dim=96, num_heads=1, stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13),
                  window_spec=(8, 4, 14, 7), window_pos_embed_bkg_spatial_size=(7, 7)),
    'base_plus': dict(embed_dim=112, num_heads=2, stages=(2, 3, 16, 3),
                      global_att_blocks=(12, 16, 20), window_spec=(8, 4, 14, 7),
                      window_pos_embed_bkg_spatial_size=(14, 14)),
    'large': dict(embed_dim=144, num_heads=2, stages=(2, 6, 36, 4), global_att_blocks=(23, 33, 43),
                  window_spec=(8, 4, 16, 8), window_pos_embed_bkg_spatial_size=(7, 7)),
}
# The paper's models on the Hugging Face hub (transformers' HieraModel layout).
HUB_IDS = {
    'tiny': 'facebook/hiera-tiny-224-hf', 'small': 'facebook/hiera-small-224-hf',
    'base': 'facebook/hiera-base-224-hf', 'base_plus': 'facebook/hiera-base-plus-224-hf',
    'large': 'facebook/hiera-large-224-hf', 'huge': 'facebook/hiera-huge-224-hf',
}


def paper_arch(size, **changes):
    """An arch dict of the paper's model ``size`` (heads per stage written out), e.g. for
    HieraBackbone(arch=...) or transformers' HieraConfig; ``changes`` replace entries."""
    facts = HIERA_PAPER[size]
    arch = dict(embed_dim=facts['embed_dim'], depths=facts['depths'],
                num_heads=tuple(facts['num_heads'] * 2 ** i for i in range(4)))
    arch.update(changes)
    return arch


# Test references `make test` installs (the [tests] extra): a missing one fails, never skips.
REFERENCES = {'hiera': 'hiera-transformer==0.1.4', 'timm': 'timm>=1.0'}


def installed(module):
    """Whether ``module`` is an installed package: not missing and not just a namespace package
    (this file puts tools/ on sys.path, where tools/detectron2/ is a folder of that name)."""
    spec = importlib.util.find_spec(module)
    return spec is not None and spec.origin is not None


# Detectron2 is not on PyPI: where it is missing, each test that needs it is skipped, naming why.
HAVE_DETECTRON2 = installed('detectron2')
needs_detectron2 = pytest.mark.skipif(
    not HAVE_DETECTRON2, reason='Detectron2 is not installed (not on PyPI: `make setup` builds it '
    'from the pinned source archive, see README "Detectron2")')


def require(module):
    """Import a parity reference; if it is missing the test fails and names the install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f'the parity reference {module!r} is missing ({exc}): install it with '
                    f"pip install '{REFERENCES[module]}' (or pip install -e '.[tests]', as "
                    '`make setup` does)', pytrace=False)


# No test may reach a model hub; loading code must go through the real cache logic.
os.environ['HF_HUB_OFFLINE'] = '1'
# Threads of each test process and of the tools it starts: the cores shared among the
# pytest-xdist workers (`make test` runs two), at most two. More threads than cores make OpenMP
# threads spin-wait for busy cores, which made steps several times slower.
WORKERS = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', 1))
THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))
os.environ['OMP_NUM_THREADS'] = str(THREADS)
torch.set_num_threads(THREADS)


def hf_config(embed_dim=96, depths=(1, 2, 7, 2), num_heads=(1, 2, 4, 8), image_size=(224, 224),
              **extra):
    from transformers import HieraConfig
    return HieraConfig(embed_dim=embed_dim, depths=list(depths), num_heads=list(num_heads),
                       image_size=list(image_size), **extra)


# Non-trivial random weights (norm gains and biases included) so parity cannot pass by luck; the
# GPU check uses the same.
from hiera_mm_tools.gpu_check import randomize_  # noqa: E402,F401


@pytest.fixture(scope='session')
def make_hf_checkpoint(tmp_path_factory):
    """Factory: save_pretrained folder of a random HF Hiera model; returns (folder, model)."""
    cache = {}

    def make(model_cls='HieraModel', seed=0, **cfg):
        key = (model_cls, seed, tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v)
                                             for k, v in cfg.items())))
        if key not in cache:
            import transformers
            model = getattr(transformers, model_cls)(hf_config(**cfg))
            randomize_(model, seed).eval()
            folder = tmp_path_factory.mktemp(model_cls)
            model.save_pretrained(folder)
            cache[key] = (str(folder), model)
        return cache[key]

    return make


def iter_dicts(obj):
    """Every dict in a nested config (dicts, lists and tuples), depth first, the outer one first."""
    if isinstance(obj, dict):
        yield obj
        for value in obj.values():
            yield from iter_dicts(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from iter_dicts(value)


# The custom hooks every hiera_mm config declares.
RUN_HOOKS = [dict(type='FiniteLossHook'), dict(type='TrustRunCheckpointsHook')]
TINY_RETINANET_BASE = os.path.join(ROOT, 'configs', 'retinanet', 'retinanet_hiera-t_fpn_1x_coco.py')


def write_tiny_retinanet_config(folder, data_root, helpers_module, helpers_source, *, max_iters,
                                checkpoint_interval, max_keep_ckpts=-1, hooks=(), extra=''):
    """A tiny RetinaNet Hiera config (inheriting the repo's) for training subprocesses.

    No random flip or shuffling: runs are deterministic, so tests can compare them. The test's
    helper module (hooks etc.) is written beside it and imported through ``custom_imports``.
    """
    folder = str(folder)
    with open(os.path.join(folder, helpers_module + '.py'), 'w') as f:
        f.write(helpers_source)
    text = f'''
_base_ = {TINY_RETINANET_BASE!r}
custom_imports = dict(imports=['hiera_mm.mmdet', {helpers_module!r}], allow_failed_imports=False)
data_root = {data_root.rstrip('/') + '/'!r}
metainfo = dict(classes=('circle', 'triangle', 'rectangle'),
                palette=[(220, 20, 60), (0, 128, 255), (0, 200, 0)])
width = 64
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dim=48, depths=(1, 1, 1, 1),
                            num_heads=(1, 2, 4, 8)),
                  drop_path_rate=0.0, init_cfg=None),
    neck=dict(in_channels=[96, 192, 384], out_channels=width),
    bbox_head=dict(num_classes=3, in_channels=width, feat_channels=width, stacked_convs=2))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, batch_sampler=None,
    # InfiniteSampler(shuffle=False) gives rank r the indices r, r + world_size, ...
    sampler=dict(type='InfiniteSampler', shuffle=False),
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=16), pipeline=train_pipeline))
val_dataloader = None
val_evaluator = None
val_cfg = None
test_dataloader = None
test_evaluator = None
test_cfg = None
param_scheduler = []
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={max_iters},
                 val_interval=100000)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval={checkpoint_interval}, max_keep_ckpts={max_keep_ckpts}))
log_processor = dict(by_epoch=False, window_size=1)
custom_hooks = {RUN_HOOKS + list(hooks)!r}  # the base's, then the test's
randomness = dict(seed=0)
''' + extra
    path = os.path.join(folder, f'tiny_retinanet_{helpers_module}.py')
    with open(path, 'w') as f:
        f.write(text)
    return path


# ---------------------------------------------------------------------------------------------
# Subprocesses end with their test
# ---------------------------------------------------------------------------------------------
_STARTED = []  # every Tool of the session, in start order


def _proc_table():
    """{pid: (ppid, state)} of every process, read from /proc."""
    table = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                stat = f.read()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(')') + 2:].split()  # after "pid (comm) "
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def process_tree(pid):
    """``pid`` and all its live descendants (zombies left out), parents first."""
    table = _proc_table()
    children = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    tree, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        if p in table and table[p][1] != 'Z':
            tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def is_alive(pid):
    """True while ``pid`` runs (a zombie, ended but not yet reaped, counts as ended)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(')') + 2] != 'Z'


def group_members(pgid):
    """Live processes of process group ``pgid``."""
    members = []
    for pid in _proc_table():
        try:
            if os.getpgid(pid) == pgid and is_alive(pid):
                members.append(pid)
        except ProcessLookupError:
            pass
    return members


class Tool:
    """A command run as a test's subprocess, in a session (and process group) of its own.

    ``kill()`` ends it with all its descendants: the group, and also the processes that left it
    for sessions of their own (torchrun starts its workers so). ``wait()`` kills everything on a
    timeout or any other exception (pytest-timeout's included), and the ``_end_processes``
    fixture kills what a test leaves running when it ends, passed or failed.
    """

    def __init__(self, args, *, cwd=ROOT, env=None, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE, text=True):
        self.args = [str(a) for a in args]
        self.proc = subprocess.Popen(self.args, cwd=str(cwd), env=env, stdout=stdout,
                                     stderr=stderr, text=text, start_new_session=True)
        self.pid = self.pgid = self.proc.pid
        _STARTED.append(self)

    def tree(self):
        return process_tree(self.pid) if self.proc.poll() is None else []

    def kill(self):
        """Stop every process of the tree (so none starts another), then SIGKILL them all."""
        stopped = set()
        for _ in range(100):
            new = [p for p in self.tree() if p not in stopped]
            if not new:
                break
            for pid in new:
                try:
                    os.kill(pid, signal.SIGSTOP)
                except ProcessLookupError:
                    pass
            stopped.update(new)
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def wait(self, timeout, check=False):
        """Output as ``subprocess.run`` returns it; the whole tree is killed if the command
        outlives ``timeout`` seconds (``TimeoutExpired``) or the test is interrupted."""
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except BaseException:
            self.kill()
            raise
        # The command ended: what it left behind in its group (daemons, orphans) ends too.
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        res = subprocess.CompletedProcess(self.args, self.proc.returncode, stdout, stderr)
        if check:
            res.check_returncode()
        return res


def run_tool(args, *, timeout, check=False, **kwargs):
    """``subprocess.run(args, capture_output=True, text=True, timeout=timeout)`` whose process
    tree dies with it on a timeout or a failure of the test (see ``Tool``)."""
    return Tool(args, **kwargs).wait(timeout, check=check)


@pytest.fixture(autouse=True)
def _end_processes():
    """Whatever a test started and left running is killed when the test ends."""
    first = len(_STARTED)
    yield
    for tool in _STARTED[first:]:
        if tool.proc.returncode is None or group_members(tool.pgid):
            tool.kill()


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """mmengine's default registry scope is process-wide (``register_all_modules()`` and
    ``init_default_scope`` set it): a test that sets 'mmseg' must not make the next test's mmdet
    builds look in mmseg's registry."""
    def scopes():
        if 'mmengine.registry' not in sys.modules:
            return None
        from mmengine.registry import DefaultScope
        return DefaultScope._instance_dict
    before = dict(scopes() or {})
    yield
    after = scopes()
    if after is not None and dict(after) != before:
        after.clear()
        after.update(before)


@pytest.fixture(scope='session', autouse=True)
def _end_session_processes():
    """... and what module or session fixtures started, when the session ends."""
    yield
    for tool in _STARTED:
        if tool.proc.returncode is None:
            tool.kill()


# The files that take minutes, longest first (their durations under `make test`). `make test` runs
# two xdist workers (or as many as there are cores) with ``--dist loadfile
# --no-loadscope-reorder``: files go to the workers in this order, so the workers start on the
# long ones and share the short ones at the end.
LONGEST_FILES = ('test_end_to_end.py', 'test_detectron2_end_to_end.py',
                 'test_mmseg_end_to_end.py', 'test_benchmark.py', 'test_gpu_check.py',
                 'test_export.py', 'test_stock_tools.py', 'test_processes.py')


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept
