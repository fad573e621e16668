"""Shared pieces of the command-line tools (train.py, test.py, demo.py and those in the
sub-folders, which put this folder on ``sys.path`` to import it).

The argument names and the work-dir / launcher conventions follow MMDetection 3.3's tools, so
the usual commands and scripts carry over unchanged.
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


def import_hiera_mm():
    """Import ``hiera_mm.mmdet`` so its modules register into mmdet's registries.

    Works from a plain checkout too (the repository root is put on ``sys.path`` when the package
    is not installed). Configs still list it in ``custom_imports``; importing twice is harmless.
    """
    try:
        import hiera_mm.mmdet  # noqa: F401
    except ModuleNotFoundError as err:
        if err.name not in ('hiera_mm', 'hiera_mm.mmdet'):
            raise
        add_checkout_to_path()
        import hiera_mm.mmdet  # noqa: F401
    return sys.modules['hiera_mm']


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
    """Read ``config``, merge ``--cfg-options`` and settle the launcher and ``work_dir``.

    ``work_dir`` priority: command line > config file > ``./work_dirs/<config name>``.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(config)
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
    ``cfg.launcher`` (a CPU-only machine gets a gloo process group, see
    ``hiera_mm.openmmlab.compat.prepare_distributed``)."""
    from hiera_mm.openmmlab.compat import prepare_distributed
    limit_dynamo_recompiles()
    prepare_distributed(cfg, cfg.get('launcher', 'none'))
    if 'runner_type' not in cfg:
        from mmengine.runner import Runner
        return Runner.from_cfg(cfg)
    from mmdet.registry import RUNNERS
    return RUNNERS.build(cfg)


def limit_dynamo_recompiles():
    """mmdet's setting that reduces repeated ``torch.compile`` compilations (matters only with
    ``compile=True`` in the config)."""
    try:
        from mmdet.utils import setup_cache_size_limit_of_dynamo
    except ImportError:  # pragma: no cover - older mmdet
        return
    setup_cache_size_limit_of_dynamo()
