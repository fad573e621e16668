"""What the OpenMMLab command-line tools share (``tools/train.py``, ``test.py``, ``demo.py``,
``analysis_tools/get_flops.py``, ``deployment/pytorch2onnx.py``): reading a config, importing its
framework and hiera_mm's integration for it, the common arguments and the runner.

train.py and test.py take detection and segmentation configs alike: the framework is the one
``hiera_mm_tools.frameworks.framework_of`` names, and only that framework and its hiera_mm
integration are imported. The argument names and the work-dir / launcher conventions follow the
tools of MMDetection 3.3 and MMSegmentation 1.2, so the usual commands and scripts carry over.
"""
import importlib
import os
import os.path as osp

from .frameworks import FRAMEWORKS, framework_of

CFG_OPTIONS_HELP = (
    'override some settings in the used config, the key-value pair in xxx=yyy format will be '
    'merged into the config file. A list value is written key="[a,b]" or key=a,b, nested '
    'lists/tuples as key="[(a,b),(c,d)]"; the quotation marks are needed and no white space '
    'is allowed.')


def import_integration(framework='mmdet'):
    """Import hiera_mm's integration for ``framework`` ('mmdet' -> ``hiera_mm.mmdet``, 'mmseg' ->
    ``hiera_mm.mmseg``), which registers hiera_mm's modules into that framework's registries;
    nothing of the other framework is imported. Returns the integration module."""
    if framework not in FRAMEWORKS:
        raise ValueError(f'no hiera_mm integration for {framework!r}: the tools run '
                         f'{" and ".join(FRAMEWORKS)} configs')
    return importlib.import_module(f'hiera_mm.{framework}')


def add_common_args(parser, work_dir_help):
    """Arguments every runner-based tool shares: --work-dir, --cfg-options, --launcher and
    --local_rank / --local-rank (the latter passed by ``torch.distributed.launch``)."""
    from mmengine.config import DictAction
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help=CFG_OPTIONS_HELP)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank (older).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def finish_args(args):
    """Export LOCAL_RANK for launchers that pass it only as an argument."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_config(config, cfg_options=None, launcher='none', work_dir=None):
    """Read ``config``, import hiera_mm's integration for its framework, then the config's
    ``custom_imports``; merge ``--cfg-options`` and settle the launcher and ``work_dir``.

    ``work_dir`` priority: command line > config file > ``./work_dirs/<config name>``.
    """
    from mmengine.config import Config
    from mmengine.utils import import_modules_from_strings

    cfg = Config.fromfile(config, import_custom_modules=False)
    framework = framework_of(config, cfg)
    import_integration(framework)
    # Refused as mmdet's own tools would fail (registry error), but here with the fix named.
    from hiera_mm.openmmlab import check_custom_imports
    check_custom_imports(cfg, framework)
    if cfg.get('custom_imports', None):
        import_modules_from_strings(**cfg.custom_imports)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
    return cfg


def build_runner(cfg):
    """The default mmengine ``Runner``, or the registered one named by ``cfg.runner_type``, for
    ``cfg.launcher`` (a CPU-only machine gets a gloo process group and SyncBN becomes BN, see
    ``hiera_mm.openmmlab.cpu_launch.prepare_distributed``)."""
    from hiera_mm.openmmlab.cpu_launch import prepare_distributed
    framework = framework_of(cfg)
    if framework == 'mmdet':
        limit_dynamo_recompiles()
    prepare_distributed(cfg, cfg.get('launcher', 'none'))
    if 'runner_type' not in cfg:
        from mmengine.runner import Runner
        return Runner.from_cfg(cfg)
    return importlib.import_module(f'{framework}.registry').RUNNERS.build(cfg)


def limit_dynamo_recompiles():
    """mmdet's setting that reduces repeated ``torch.compile`` compilations (matters only with
    ``compile=True`` in the config)."""
    try:
        from mmdet.utils import setup_cache_size_limit_of_dynamo
    except ImportError:  # pragma: no cover - older mmdet
        return
    setup_cache_size_limit_of_dynamo()
