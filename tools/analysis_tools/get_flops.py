#!/usr/bin/env python
"""FLOPs and parameter count of a detector (as MMDetection 3.3's analysis_tools/get_flops.py:
``mmengine.analysis.get_model_complexity_info`` on the model's ``tensor``-mode forward).

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W | --shape S] [--num-images N]
                                             [--cfg-options k=v ...] [--show-table]

With ``--shape`` a dummy image of that size (padded to the data preprocessor's
``pad_size_divisor``) is used and no dataset is needed. Without it, like mmdet, the first
``--num-images`` images of the validation dataloader are used and the FLOPs averaged.
FLOPs are counted as fvcore does (one fused multiply-add = one FLOP).
"""
import os.path as osp
import tempfile

from hiera_mm_tools.runner import CFG_OPTIONS_HELP, import_integration

import_integration('mmdet')  # registers hiera_mm's modules, whatever the config's custom_imports say


def _dummy_batch(model, shape):
    """A one-image batch as the data preprocessor would give it, for an H x W input."""
    import torch
    from mmdet.structures import DetDataSample
    h, w = shape
    divisor = int(getattr(model.data_preprocessor, 'pad_size_divisor', 1) or 1)
    ph, pw = -(-h // divisor) * divisor, -(-w // divisor) * divisor
    sample = DetDataSample(metainfo=dict(
        img_id=0, img_shape=(h, w), ori_shape=(h, w), pad_shape=(ph, pw),
        batch_input_shape=(ph, pw), scale_factor=(1.0, 1.0), flip=False, flip_direction=None))
    device = next(model.parameters()).device
    inputs = torch.rand(1, 3, ph, pw, device=device)
    return inputs, [sample]


def _format(n):
    """Human-readable count as mmdet prints it (mmengine's formatter: 1.23G, 45.6M, ...)."""
    try:
        from mmengine.analysis.print_helper import _format_size
        return _format_size(int(n))
    except ImportError:  # pragma: no cover - mmengine moved its helper
        for unit, scale in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('K', 1e3)):
            if abs(n) >= scale:
                return f'{n / scale:.3g}{unit}'
        return str(n)


def get_flops(config, shape=None, num_images=100, cfg_options=None, show_table=False,
              device=None):
    """Complexity of the model built from ``config`` (path or Config).

    Returns a dict: ``flops`` (mean over the inputs, int), ``params`` (int), ``flops_str``,
    ``params_str``, ``input_shape`` (padded H, W of the last input), ``ori_shape`` (its size
    before resizing and padding), ``compute_type``, ``num_inputs`` and
    ``table`` when ``show_table``.
    """
    import numpy as np
    import torch
    from functools import partial
    from mmengine.analysis import get_model_complexity_info
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmdet.registry import MODELS

    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = osp.join(tempfile.gettempdir(), 'get_flops')  # nothing is written there
    init_default_scope(cfg.get('default_scope', 'mmdet'))

    model = MODELS.build(cfg.model)
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = revert_sync_batchnorm(model.to(device))  # SyncBN needs a process group
    model.eval()
    forward = model.forward

    if shape is not None:
        if len(shape) == 1:
            shape = (shape[0], shape[0])
        batches = [_dummy_batch(model, tuple(int(s) for s in shape))]
        compute_type = f'direct: random input of shape {tuple(shape)}'
    else:
        cfg.val_dataloader.batch_size = 1
        cfg.val_dataloader.num_workers = 0
        cfg.val_dataloader.persistent_workers = False
        loader = Runner.build_dataloader(cfg.val_dataloader)

        def _from_loader():
            for idx, data_batch in enumerate(loader):
                if idx == num_images:
                    break
                data = model.data_preprocessor(data_batch)
                yield data['inputs'], data['data_samples']
        batches = _from_loader()
        compute_type = 'dataloader: images of the validation dataset'

    flops, params, table, input_shape, ori_shape = [], None, None, None, None
    with torch.no_grad():
        for inputs, samples in batches:
            model.forward = partial(forward, data_samples=samples, mode='tensor')
            out = get_model_complexity_info(model, inputs=inputs, show_table=show_table,
                                            show_arch=False)
            flops.append(out['flops'])
            params = out['params']
            table = out.get('out_table')
            input_shape = tuple(inputs.shape[-2:])
            ori_shape = tuple(samples[0].ori_shape)
    model.forward = forward
    if not flops:
        raise RuntimeError('no input: the validation dataloader is empty')
    mean = int(np.mean(flops))
    result = dict(flops=mean, params=int(params), flops_str=_format(mean),
                  params_str=_format(int(params)), input_shape=input_shape, ori_shape=ori_shape,
                  compute_type=compute_type, num_inputs=len(flops))
    if show_table:
        result['table'] = table
    return result


def parse_args(argv=None):
    import argparse
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description='Get a detector\'s FLOPs and parameter count')
    p.add_argument('config', help='config file path')
    p.add_argument('--shape', type=int, nargs='+', default=None, metavar='S',
                   help='input size H W (or S for a square); default: images of the '
                        'validation dataset')
    p.add_argument('--num-images', type=int, default=100,
                   help='number of validation images to average over (without --shape)')
    p.add_argument('--device', default=None, help='device (default: cuda if available)')
    p.add_argument('--show-table', action='store_true', help='print the per-module table')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help=CFG_OPTIONS_HELP)
    args = p.parse_args(argv)
    if args.shape is not None and len(args.shape) not in (1, 2):
        p.error('--shape takes H W or S')
    return args


def main(argv=None):
    args = parse_args(argv)
    res = get_flops(args.config, args.shape, args.num_images, args.cfg_options,
                    args.show_table, args.device)
    if args.show_table:
        print(res['table'])
    split = '=' * 30
    if res['input_shape'] != res['ori_shape']:
        print(f'{split}\nInput resized / padded (size divisor) from {res["ori_shape"]} to '
              f'{res["input_shape"]}')
    print(f'{split}\nCompute type: {res["compute_type"]}\n'
          f'Input shape: {res["input_shape"]}\nFlops: {res["flops_str"]}\n'
          f'Params: {res["params_str"]}\n{split}')
    print('!!!Please be cautious if you use the results in papers. You may need to check if '
          'all ops are supported and verify that the flops computation is correct.')
    return res


if __name__ == '__main__':
    main()
