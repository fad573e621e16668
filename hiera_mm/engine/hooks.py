"""Training hooks."""
import math

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.hooks import Hook

from mmdet.registry import HOOKS


@HOOKS.register_module()
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
