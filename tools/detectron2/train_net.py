#!/usr/bin/env python
"""Train or evaluate a Detectron2 LazyConfig detector with a Hiera backbone.

Detectron2's ``tools/lazyconfig_train_net.py`` workflow (same arguments, same config keys:
``model``, ``dataloader.{train,test,evaluator}``, ``optimizer``, ``lr_multiplier``, ``train.*``),
with Hiera weights loaded by ``hiera_mm.detectron2.HieraCheckpointer`` (``hf://`` ids,
save_pretrained folders, FAIR / timm / SAM2 / transformers files, http(s) URLs), the CPU made a
first-class device, and COCO-format datasets registered from the command line::

    # 8 GPUs, the paper's Hiera-B recipe (COCO under $DETECTRON2_DATASETS, default ./datasets)
    python tools/detectron2/train_net.py --num-gpus 8 \\
        --config-file configs/detectron2/mask_rcnn_hiera_b_100ep.py
    # resume the run in train.output_dir after an interruption
    python tools/detectron2/train_net.py --num-gpus 8 --resume --config-file ...
    # evaluate a checkpoint (COCOEvaluator: box and mask AP)
    python tools/detectron2/train_net.py --eval-only --config-file ... \\
        train.init_checkpoint=output/model_final.pth
    # two machines: the same command on each, with --machine-rank 0 / 1
    python tools/detectron2/train_net.py --num-machines 2 --machine-rank 0 \\
        --dist-url tcp://<host of rank 0>:29500 --num-gpus 8 --config-file ...
    # your own COCO-format data
    python tools/detectron2/train_net.py --config-file ... \\
        --register mydata_train train.json images/ --register mydata_val val.json images/ \\
        dataloader.train.dataset.names=mydata_train dataloader.test.dataset.names=mydata_val \\
        model.roi_heads.num_classes=5

**Mixed precision.** ``train.amp.enabled=True`` (the ViTDet-style configs' default) trains with
Detectron2's ``AMPTrainer`` in ``train.amp.precision``: 'float16' (default, dynamic loss scale)
or 'bfloat16'; ``train.ddp.fp16_compression`` (fp16 gradients in the all-reduce) is kept on GPUs.

**CPU.** ``train.device=cpu`` runs on the CPU: AMP (CUDA only in Detectron2's ``AMPTrainer``) is
replaced by fp32 training with ``SimpleTrainer`` (a warning), and ``--num-gpus N`` starts ``N``
processes that train together with the gloo backend (Detectron2's ``launch`` chooses gloo when no
GPU is visible; this script hides the GPUs from the processes when ``train.device=cpu``, so it
holds on a GPU machine too). ``--num-processes`` is the same option under a name that does not
mention GPUs. Use ``--dist-url auto`` to pick a free local port.

The config file may also be the name of a config shipped with hiera_mm
(``--config-file detectron2/mask_rcnn_hiera_b_100ep.py``; ``python -m hiera_mm.configs --list``),
which is how an installed hiera_mm is used without a checkout.
"""
from __future__ import annotations

import json
import logging
import os
import os.path as osp

from detectron2.config import instantiate
from detectron2.engine import (
    AMPTrainer,
    SimpleTrainer,
    default_argument_parser,
    default_setup,
    default_writers,
    hooks,
    launch,
)
from detectron2.engine.defaults import create_ddp_model
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm

from hiera_mm.detectron2 import HieraCheckpointer
from hiera_mm_tools import d2_runner

logger = logging.getLogger('detectron2')

EVAL_RESULTS = 'eval_results.json'
EPILOG = """examples:
  %(prog)s --num-gpus 8 --config-file configs/detectron2/mask_rcnn_hiera_b_100ep.py
  %(prog)s --eval-only --config-file CFG train.init_checkpoint=output/model_final.pth
  %(prog)s --num-gpus 2 --dist-url auto --config-file CFG train.device=cpu   (2 CPU processes)
  %(prog)s --config-file CFG --register mine_train train.json imgs/ \\
      dataloader.train.dataset.names=mine_train model.roi_heads.num_classes=5
overrides are LazyConfig paths: path.key=value"""


def build_ddp_model(cfg, model):
    """``create_ddp_model`` with the config's ``train.ddp`` options; on the CPU, DDP without
    device ids and without fp16 gradient compression (a CUDA-side saving)."""
    ddp = dict(cfg.train.get('ddp', {}))
    if d2_runner.on_cpu(cfg):
        ddp.update(device_ids=None, fp16_compression=False)
    return create_ddp_model(model, **ddp)


def do_test(cfg, model):
    """Run the config's evaluator (COCOEvaluator in the shipped configs) on ``dataloader.test``.

    The metrics are printed and, on the main process, written to
    ``<train.output_dir>/inference/eval_results.json``.
    """
    if 'evaluator' not in cfg.dataloader:
        logger.warning('the config has no dataloader.evaluator: nothing to evaluate')
        return {}
    out_dir = osp.join(cfg.train.output_dir, 'inference')
    if 'output_dir' not in cfg.dataloader.evaluator or cfg.dataloader.evaluator.output_dir is None:
        cfg.dataloader.evaluator.output_dir = out_dir
    results = inference_on_dataset(model, instantiate(cfg.dataloader.test),
                                   instantiate(cfg.dataloader.evaluator))
    if comm.is_main_process():
        print_csv_format(results)
        os.makedirs(out_dir, exist_ok=True)
        with open(osp.join(out_dir, EVAL_RESULTS), 'w') as f:
            json.dump(results, f, indent=1)
    return results


#: ``train.amp.precision`` -> the autocast dtype handed to ``AMPTrainer(precision=...)``
AMP_PRECISIONS = ('float16', 'bfloat16')


def amp_precision(cfg):
    """The autocast dtype of ``train.amp.precision`` ('float16', the default, or 'bfloat16').

    Detectron2's ``AMPTrainer`` takes a ``precision`` that its LazyConfig train script never
    passes; here the config (or ``train.amp.precision=bfloat16`` on the command line) decides.
    """
    import torch
    name = str(cfg.train.amp.get('precision', 'float16'))
    if name not in AMP_PRECISIONS:
        raise ValueError(f'train.amp.precision={name!r} is not one of {AMP_PRECISIONS}; set e.g. '
                         'train.amp.precision=bfloat16')
    return getattr(torch, name)


def build_trainer(cfg, model, data_loader, optimizer):
    """``AMPTrainer`` in ``train.amp.precision`` when ``train.amp.enabled``, else
    ``SimpleTrainer``. On the CPU (``train.device=cpu``) AMP is not available in Detectron2
    (``AMPTrainer`` asserts CUDA in every step): fp32 ``SimpleTrainer``, with a warning."""
    amp = cfg.train.get('amp', None) or {}
    if not amp.get('enabled', False):
        return SimpleTrainer(model, data_loader, optimizer)
    precision = amp_precision(cfg)  # checked on the CPU too: a bad value fails everywhere
    if not d2_runner.on_cpu(cfg):
        return AMPTrainer(model, data_loader, optimizer, precision=precision)
    logger.warning(f'train.amp.enabled is ignored on the CPU (Detectron2\'s AMPTrainer needs '
                   f'CUDA): training in fp32 with SimpleTrainer instead of {precision} AMP; set '
                   'train.amp.enabled=False to silence this')
    return SimpleTrainer(model, data_loader, optimizer)


def do_train(args, cfg):
    model = instantiate(cfg.model)
    logger.info(f'Model:\n{model}')
    model.to(cfg.train.device)

    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)

    model = build_ddp_model(cfg, model)
    trainer = build_trainer(cfg, model, train_loader, optimizer)
    checkpointer = HieraCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    main_process = comm.is_main_process()
    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer)
        if main_process else None,
        # train.eval_period <= 0: no evaluation during or after training (use --eval-only).
        hooks.EvalHook(cfg.train.eval_period, lambda: do_test(cfg, model))
        if cfg.train.eval_period > 0 else None,
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter),
                             period=cfg.train.log_period) if main_process else None,
    ])

    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    # A resumed checkpoint holds the iteration that had finished: continue after it.
    start_iter = trainer.iter + 1 if args.resume and checkpointer.has_checkpoint() else 0
    trainer.train(start_iter, cfg.train.max_iter)


def main(args):
    d2_runner.register_datasets(args.register)
    cfg = d2_runner.load_config(args.config_file, args.opts)
    d2_runner.check_device(cfg)
    default_setup(cfg, args)

    if args.eval_only:
        model = instantiate(cfg.model)
        model.to(cfg.train.device)
        model = build_ddp_model(cfg, model)
        HieraCheckpointer(model).load(cfg.train.init_checkpoint)
        return do_test(cfg, model)
    return do_train(args, cfg)


def get_parser():
    parser = default_argument_parser(epilog=EPILOG)
    parser.add_argument('--num-processes', type=int, default=None, dest='num_processes',
                        help='processes per machine; the same as --num-gpus, for CPU runs '
                             '(train.device=cpu) where each process is a CPU worker')
    parser.add_argument('--register', nargs=3, action='append', default=[],
                        metavar=('NAME', 'JSON', 'IMAGE_ROOT'), help=d2_runner.REGISTER_HELP)
    return parser


def invoke_main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    if args.num_processes is not None:
        args.num_gpus = args.num_processes
    # Decide the device before any process starts. On the CPU, hide the GPUs so that launch()
    # uses gloo (instead of NCCL + one GPU per process) even on a machine that has GPUs.
    cfg = d2_runner.load_config(args.config_file, args.opts)
    if d2_runner.on_cpu(cfg):
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))


if __name__ == '__main__':
    invoke_main()
