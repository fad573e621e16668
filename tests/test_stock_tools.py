"""Stock launchers give the same run as ours: the configs declare the hooks a run needs.

mmdet's own ``tools/train.py`` / ``tools/test.py`` (shipped in the mmdet package under
``.mim/tools``), ``Runner.from_cfg`` and our ``tools/train.py`` must register the same hooks and
write the same checkpoints; resuming a run started by stock tools works on every supported torch
(torch >= 2.6 through ``TrustRunCheckpointsHook``, older torch through mmengine's own loader,
which hiera_mm leaves alone there).
"""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, write_tiny_retinanet_config
from conftest import run_tool as run_in_group

TOY_CONFIG = osp.join(ROOT, 'configs', 'toy', 'mask-rcnn_hiera-t_fpn_toy.py')


def mmdet_tool(name):
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', name)
    assert osp.isfile(path), f'mmdet ships no {path}'
    return path


def hook_summary(runner):
    """(class name, priority) of every hook, in execution order, plus the checkpoint options."""
    from mmengine.hooks import CheckpointHook
    hooks = [(type(h).__name__, h.priority) for h in runner.hooks]
    ckpt = next(h for h in runner.hooks if isinstance(h, CheckpointHook))
    return hooks, (ckpt.interval, ckpt.by_epoch, ckpt.max_keep_ckpts)


def test_our_train_entry_and_runner_from_cfg_register_the_same_hooks(tmp_path, monkeypatch):
    import train  # tools/train.py (tools/ is on sys.path, conftest)
    from mmengine.config import Config
    from mmengine.runner import Runner

    monkeypatch.setenv('LOCAL_RANK', '0')
    work = str(tmp_path / 'work')
    ours = train.config_from_args(train.parse_args([TOY_CONFIG, '--work-dir', work]))
    stock = Config.fromfile(TOY_CONFIG)
    stock.work_dir = work
    hooks_ours = hook_summary(Runner.from_cfg(ours))
    hooks_stock = hook_summary(Runner.from_cfg(stock))
    assert hooks_ours == hooks_stock
    names = [name for name, _ in hooks_stock[0]]
    for hook in ('FiniteLossHook', 'TrustRunCheckpointsHook', 'AtomicCheckpointHook'):
        assert hook in names
    assert 'CheckpointHook' not in names  # replaced, not doubled


def test_checkpoint_loader_is_replaced_only_where_torch_needs_it():
    from mmengine.runner import CheckpointLoader

    import hiera_mm.mmdet  # noqa: F401  (installs the loader)
    import hiera_mm.openmmlab.checkpoint_loader as compat
    local = CheckpointLoader._schemes['']
    if compat.torch_loads_weights_only_by_default():
        assert local is compat.load_local_checkpoint
    else:  # torch < 2.6 reads mmengine's checkpoints itself: mmengine's loader is kept
        assert local is not compat.load_local_checkpoint
        assert local.__module__.startswith('mmengine.')


EXTRA_TEST_SPLIT = '''
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CocoDataset', data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                 test_mode=True, pipeline=test_pipeline))
test_evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_val.json',
                      metric='bbox')
test_cfg = dict(type='TestLoop')
'''


def run_tool(args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(cwd), ROOT] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else [])))
    res = run_in_group([sys.executable, *args], cwd=cwd, env=env, stderr=subprocess.STDOUT,
                       timeout=600)
    assert res.returncode == 0, res.stdout[-4000:]
    return res.stdout


@pytest.mark.slow
def test_mmdet_stock_tools_train_resume_and_test(tmp_path):
    from make_toy_coco import make_toy_coco
    data = make_toy_coco(str(tmp_path / 'toy'), num_train=3, num_val=2, size=64)
    cfg = write_tiny_retinanet_config(tmp_path, data['root'], 'stock_helpers', '', max_iters=2,
                                      checkpoint_interval=2, extra=EXTRA_TEST_SPLIT)
    work = tmp_path / 'work'
    train_tool, test_tool = mmdet_tool('train.py'), mmdet_tool('test.py')

    log = run_tool([train_tool, cfg, '--work-dir', str(work)], tmp_path)
    for hook in ('FiniteLossHook', 'TrustRunCheckpointsHook', 'AtomicCheckpointHook'):
        assert hook in log, f'{hook} missing from the run started by mmdet/.mim/tools/train.py'
    assert (work / 'iter_2.pth').is_file()
    assert (work / 'last_checkpoint').read_text().strip() == str(work / 'iter_2.pth')

    # --resume with stock tools: a full training checkpoint (optimizer, message hub) read back
    log = run_tool([train_tool, cfg, '--work-dir', str(work), '--resume',
                    '--cfg-options', 'train_cfg.max_iters=4'], tmp_path)
    assert 'resumed' in log.lower()
    assert [int(i) for i in re.findall(r'Iter\(train\) \[\s*(\d+)/4\]', log)] == [3, 4]
    state = torch.load(work / 'iter_4.pth', map_location='cpu', weights_only=False)
    assert state['meta']['iter'] == 4 and 'optimizer' in state

    # score_thr 0: four iterations leave every score below RetinaNet's 0.05, and CocoMetric
    # reports nothing for an empty result set
    log = run_tool([test_tool, cfg, str(work / 'iter_4.pth'), '--work-dir', str(work),
                    '--cfg-options', 'model.test_cfg.score_thr=0.0'], tmp_path)
    assert 'Load checkpoint from ' + str(work / 'iter_4.pth') in log
    assert re.search(r'coco/bbox_mAP: [0-9.]+', log), log[-3000:]
