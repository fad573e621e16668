"""Training hooks that hiera_mm's configs declare, so that every way of starting a run (our
tools, mmdet's tools, ``mim train``, ``Runner.from_cfg``) gets them."""
import math
import os
import os.path as osp

import torch
from mmengine.dist import all_reduce, is_distributed, is_main_process
from mmengine.fileio import LocalBackend, get_file_backend, register_backend
from mmengine.hooks import CheckpointHook, Hook

from .checkpoint_loader import trust_checkpoint_location


class TrustRunCheckpointsHook(Hook):
    """Let the run read back its own full training checkpoints on torch >= 2.6.

    mmengine's training checkpoints hold pickled Python objects besides tensors, which torch
    >= 2.6 refuses to load by default; ``checkpoint_loader`` reads them only from trusted
    places. Before the runner loads or resumes anything, this hook trusts the run's work dir
    and the checkpoint the run was given (``load_from``, ``--resume PATH``, test.py's
    CHECKPOINT): the trust comes from the config and the runner, whichever tool started it.
    Any other pickle stays refused. Before torch 2.6 nothing is loaded differently.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner):
        trust_checkpoint_location(runner.work_dir)
        trust_checkpoint_location(getattr(runner, '_load_from', None))


class FiniteLossHook(Hook):
    """Stop training at the first iteration whose loss is NaN or infinite.

    Runs right after the optimizer step, before any checkpoint hook of the same iteration
    (priority ABOVE_NORMAL vs. the checkpoint hook's VERY_LOW), so no checkpoint is written
    from a diverged model. It reads the logged losses only: nothing on the backbone's path.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        bad = {k: float(v.detach()) if torch.is_tensor(v) else float(v)
               for k, v in (outputs or {}).items() if k.startswith('loss')}
        bad = {k: v for k, v in bad.items() if not math.isfinite(v)}
        if is_distributed():
            # A NaN on one rank reaches every rank's weights through the gradient all-reduce,
            # while the other ranks' own losses stay finite: decide together.
            flag = torch.tensor([float(bool(bad))])
            all_reduce(flag, op='max')
            if flag.item() and not bad:
                bad = {'loss (on another rank)': float('nan')}
        if bad:
            raise FloatingPointError(
                f'non-finite loss at iteration {runner.iter + 1}: '
                + ', '.join(f'{k}={v}' for k, v in sorted(bad.items()))
                + '. Training stopped; no checkpoint was written for this iteration. Lower the '
                'learning rate, enable gradient clipping (optim_wrapper.clip_grad) or check the '
                f'data, then resume from the last checkpoint in {runner.work_dir}.')


def _fsync(path):
    # fsync flushes the file (or directory) itself, not only what this descriptor wrote.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@register_backend('hiera_mm_durable_local')
class DurableLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put`` / ``put_text`` leave the file either as it was or complete,
    and on disk when they return: the data goes to ``<file>.tmp``, is fsynced and renamed over
    ``<file>`` (atomic on POSIX), then the directory is fsynced so that the rename survives a
    power loss too. A write killed half-way leaves only the ``.tmp`` file torn."""

    def put(self, obj, filepath):
        self._write_then_rename(super().put, obj, filepath)

    def put_text(self, obj, filepath, encoding='utf-8'):
        self._write_then_rename(super().put_text, obj, filepath, encoding)

    @staticmethod
    def _write_then_rename(write, obj, filepath, *args):
        filepath = osp.abspath(filepath)
        tmp = filepath + '.tmp'
        write(obj, tmp, *args)
        _fsync(tmp)
        os.replace(tmp, filepath)
        _fsync(osp.dirname(filepath))


class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same options), safe against kills and power losses.

    mmengine 0.10.7 deletes the oldest kept checkpoint (``max_keep_ckpts``) and the previous best
    one (``save_best``) before writing the new file, so a kill during the write can leave none,
    and it writes checkpoints and ``last_checkpoint`` in place without fsync, so after a power
    loss ``last_checkpoint`` can name a torn file. Here every file goes through
    ``DurableLocalBackend``, ``last_checkpoint`` is written after the checkpoint it names is on
    disk, and outdated files are deleted only after that. An ``out_dir`` on another backend keeps
    mmengine's behaviour. hiera_mm's configs use it as ``default_hooks.checkpoint``.
    """

    _durable = False

    def before_train(self, runner):
        super().before_train(runner)
        self._durable = (os.name == 'posix' and self.file_client_args is None
                         and isinstance(self.file_backend, LocalBackend))
        if self._durable:
            # runner.save_checkpoint writes through backend_args: checkpoints and best ones alike
            self.backend_args = dict(backend='hiera_mm_durable_local')
            self.file_backend = get_file_backend(self.out_dir, backend_args=self.backend_args)
        else:
            runner.logger.warning(
                f'AtomicCheckpointHook: {self.out_dir} is not a local POSIX path used without '
                'file_client_args; checkpoints are written as by mmengine (in place, outdated '
                'ones deleted first).')

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not self._durable:
            return super()._save_checkpoint_with_step(runner, step, meta)
        # The bookkeeping of the parent, but the outdated checkpoint is deleted last.
        outdated = None
        if self.max_keep_ckpts > 0 and (not self.keep_ckpt_ids or self.keep_ckpt_ids[-1] != step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, filename, save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
            backend_args=self.backend_args, **self.args)
        if not is_main_process():  # only the main process writes files
            return
        self.file_backend.put_text(self.last_ckpt, osp.join(runner.work_dir, 'last_checkpoint'))
        if outdated is not None:
            self._remove(self.file_backend.join_path(self.out_dir,
                                                     self.filename_tmpl.format(outdated)))

    def _save_best_checkpoint(self, runner, metrics):
        if not self._durable:
            return super()._save_best_checkpoint(runner, metrics)
        # The parent deletes the previous best file before writing the new one, through
        # self.file_backend.remove: hold those deletions back until its writes have returned.
        backend, self.file_backend = self.file_backend, _DeferRemovals(self.file_backend)
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            deferred, self.file_backend = self.file_backend.deferred, backend
        for path in deferred:
            self._remove(path)

    def _remove(self, path):
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)


class _DeferRemovals:
    """A file backend that records ``remove`` calls instead of carrying them out."""

    def __init__(self, backend):
        self.backend, self.deferred = backend, []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def remove(self, filepath):
        self.deferred.append(filepath)
