"""Shared pieces of the command-line tools (train.py, test.py, demo.py and those in the
sub-folders, which put this folder on ``sys.path`` to import it).

train.py and test.py take detection and segmentation configs alike: the framework is the
config's ``default_scope`` ('mmdet' or 'mmseg', inherited from its ``mmdet::`` / ``mmseg::``
base), and only that framework and its hiera_mm integration are imported. The argument names
and the work-dir / launcher conventions follow the tools of MMDetection 3.3 and MMSegmentation
1.2, so the usual commands and scripts carry over unchanged.
"""
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

CFG_OPTIONS_HELP = (
    'override some settings in the used config, the key-value pair in xxx=yyy format will be '
    'merged into the config file. A list value is written key="[a,b]" or key=a,b, nested '
    'lists/tuples as key="[(a,b),(c,d)]"; the quotation marks are needed and no white space '
    'is allowed.')


def add_checkout_to_path():
    """Import ``hiera_mm`` from this checkout (the tools run from a plain checkout too)."""
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)


#: framework (a config's default_scope) -> hiera_mm's integration package for it
INTEGRATIONS = {'mmdet': 'hiera_mm.mmdet', 'mmseg': 'hiera_mm.mmseg'}


def import_hiera_mm(framework='mmdet'):
    """Import ``framework`` and then hiera_mm's integration for it, which registers hiera_mm's
    modules into that framework's registries (nothing of the other framework is imported).

    Works from a plain checkout too (the repository root is put on ``sys.path`` when the package
    is not installed). Configs still list it in ``custom_imports``; importing twice is harmless.
    """
    import importlib
    if framework not in INTEGRATIONS:
        raise ValueError(f'no hiera_mm integration for {framework!r}; '
                         f'one of {sorted(INTEGRATIONS)}')
    # The framework first: hiera_mm's package-level rule for old detection configs reads
    # sys.modules (a segmentation process is one that has imported mmseg).
    importlib.import_module(framework)
    integration = INTEGRATIONS[framework]
    try:
        importlib.import_module(integration)
    except ModuleNotFoundError as err:
        if err.name not in ('hiera_mm', integration):
            raise
        add_checkout_to_path()
        importlib.import_module(integration)
    return sys.modules['hiera_mm']


def framework_of(cfg):
    """'mmdet' or 'mmseg': the config's ``default_scope`` (mmdet when it names none, as
    configs of mmdet-only releases may)."""
    scope = cfg.get('default_scope', None) or 'mmdet'
    if scope not in INTEGRATIONS:
        raise ValueError(f"default_scope {scope!r} of {cfg.filename}: these tools run "
                         f"{' and '.join(sorted(INTEGRATIONS))} configs")
    return scope


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
    """Read ``config``, import its framework and hiera_mm's integration for it, then the config's
    ``custom_imports``; merge ``--cfg-options`` and settle the launcher and ``work_dir``.

    ``work_dir`` priority: command line > config file > ``./work_dirs/<config name>``.
    """
    from mmengine.config import Config
    from mmengine.utils import import_modules_from_strings

    # custom_imports wait until the framework is known and imported (see import_hiera_mm).
    cfg = Config.fromfile(config, import_custom_modules=False)
    import_hiera_mm(framework_of(cfg))
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
    ``hiera_mm.openmmlab.compat.prepare_distributed``)."""
    import importlib

    from hiera_mm.openmmlab.compat import prepare_distributed
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
