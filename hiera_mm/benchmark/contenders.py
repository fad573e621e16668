"""The models compared, which of them can be built here, and how each is called.

Weights are random (the speed does not depend on them); drop path is off in every contender.
"""
from __future__ import annotations

import importlib.util
import os.path as osp
import sys

from ..archs import ARCH_SETTINGS
from .environment import has_module, have_mmdet, why_no_mmdet

HIERA_FILE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'models', 'hiera.py')
HIERA_CONTENDERS = {
    # name: (attention, global_blocks)
    'hiera_mm-exact': ('exact', None),
    'hiera_mm-windowed': ('windowed', None),
    'hiera_mm-windowed-noglobal': ('windowed', ()),
}
# The same trunk exported (TorchScript-based ONNX exporter) and run by onnxruntime on the CPU.
ONNX_CONTENDERS = {'onnxruntime-exact': 'hiera_mm-exact', 'onnxruntime-windowed': 'hiera_mm-windowed'}
ALL_CONTENDERS = tuple(HIERA_CONTENDERS) + ('hf-hiera', 'swin-t', 'r50') + tuple(ONNX_CONTENDERS)
HF_HIERA_ARCHS = ('tiny', 'small', 'base', 'base_plus', 'large', 'huge')
SWIN_T = dict(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
              out_indices=(0, 1, 2, 3))


class Contender:
    """A model and how to call it: ``run(x)`` returns a list of output tensors."""

    def __init__(self, name, module, run, impl):
        self.name, self.module, self.run, self.impl = name, module, run, impl
        self.params_m = sum(p.numel() for p in module.parameters()) / 1e6


def split_contender(name: str) -> tuple[str, str | None]:
    """'hiera_mm-exact@/tmp/hiera.py' -> ('hiera_mm-exact', '/tmp/hiera.py')."""
    base, _, path = name.partition('@')
    return base, (path or None)


def is_hiera(name: str) -> bool:
    """Rows whose input is zero-padded to multiples of 32."""
    return (split_contender(name)[0] in HIERA_CONTENDERS or name == 'hf-hiera'
            or name in ONNX_CONTENDERS)


def unavailable_reason(name: str, args) -> str | None:
    """Why ``name`` cannot be built here (None when it can)."""
    name, path = split_contender(name)
    if path is not None:
        if name not in HIERA_CONTENDERS:
            return 'only the hiera_mm contenders take @path/to/hiera.py'
        if args.mm_backbone:
            return '--mm-backbone times the installed hiera_mm, not @path/to/hiera.py'
        if not osp.isfile(path):
            return f'no file {path}'
    if name in HIERA_CONTENDERS:
        if args.mm_backbone and not have_mmdet():
            return '--mm-backbone needs mmdet'
        return None
    if name == 'hf-hiera':
        if not has_module('transformers'):
            return 'transformers is not installed'
        if args.arch not in HF_HIERA_ARCHS:
            return f"transformers' HieraModel has no '{args.arch}' (SAM2) trunk"
        return None
    if name in ONNX_CONTENDERS:
        if not (has_module('onnxruntime') and has_module('onnx')):
            return "onnx / onnxruntime are not installed (pip install 'hiera_mm[deploy]')"
        if args.mode != 'fwd' or args.device != 'cpu' or args.dtype != 'fp32':
            return 'onnxruntime rows run forward only, fp32 on the CPU (--mode fwd)'
        return None
    if name in ('swin-t', 'r50'):
        if have_mmdet() or has_module('timm'):
            return None
        return 'neither mmdet nor timm is installed'
    return f'unknown contender (choose from {", ".join(ALL_CONTENDERS)})'


def select_contenders(args) -> tuple[list, list]:
    """(names to run, notes): ``--contenders`` or every contender that can be built here.

    A name the user gave that cannot run ends the program; the default ones are skipped, noted.
    """
    notes, names = [], []
    for name in args.contenders or ALL_CONTENDERS:
        why = unavailable_reason(name, args)
        if why is None:
            names.append(name)
        elif args.contenders is not None and name not in ALL_CONTENDERS:
            sys.exit(f'--contenders: {name}: {why}')
        else:
            notes.append(f'{name} skipped: {why}')
    if not have_mmdet() and any(n in names for n in ('swin-t', 'r50')):
        notes.append(f'mmdet is not importable ({why_no_mmdet()}): swin-t and r50 are timm models')
    if any(s % 32 for s in args.size) and any(is_hiera(n) for n in names):
        notes.append('the input is zero-padded to multiples of 32 for the Hiera rows')
    return names, notes


def load_hiera_module(path: str | None = None):
    """``hiera_mm.models.hiera`` (plain torch, importable without the OpenMMLab stack), or another
    copy of that file at ``path`` (e.g. an older revision, to compare) as a standalone module."""
    path = osp.abspath(path or HIERA_FILE)
    if path == HIERA_FILE:
        from ..models import hiera
        return hiera
    name = 'hiera_mm_standalone_hiera_' + ''.join(c if c.isalnum() else '_' for c in path)
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def init_quietly(model) -> None:
    """``model.init_weights()`` without mmengine's per-parameter INFO log (hundreds of lines)."""
    try:
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
    except ImportError:
        model.init_weights()
        return
    level = logger.level
    logger.setLevel('WARNING')
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def pad_to(x, divisor):
    import torch.nn.functional as F
    pad_h, pad_w = (-x.shape[-2]) % divisor, (-x.shape[-1]) % divisor
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


def build_hiera_trunk(arch, attention='exact', global_blocks=None, with_cp=False, path=None):
    hiera = load_hiera_module(path)
    model = hiera.build_hiera(arch, attention=attention, global_blocks=global_blocks,
                              with_cp=with_cp)
    model.init_weights()
    return model


def _hiera_mm(name, path, args, with_cp):
    attention, global_blocks = HIERA_CONTENDERS[name]
    if args.mm_backbone:
        from ..openmmlab.backbone import HieraBackbone
        model = HieraBackbone(arch=args.arch, attention=attention, global_blocks=global_blocks,
                              with_cp=with_cp)
        init_quietly(model)
        return Contender(name, model, lambda x: list(model(x)),
                         f'hiera_mm HieraBackbone(arch={args.arch!r}, '
                         f'attention={attention!r}, global_blocks={global_blocks})')
    model = build_hiera_trunk(args.arch, attention, global_blocks, with_cp, path)
    divisor = model.size_divisor
    return Contender(name, model, lambda x: model(pad_to(x, divisor)),
                     f'{path or "hiera.py"} Hiera(arch={args.arch!r}, '
                     f'attention={attention!r}, global_blocks={model.global_blocks})')


def _hf_hiera(name, args):
    from transformers import HieraConfig, HieraModel
    s = ARCH_SETTINGS[args.arch]
    config = HieraConfig(embed_dim=s['embed_dim'], depths=list(s['depths']),
                         num_heads=list(s['num_heads']))
    model = HieraModel(config, add_pooling_layer=False)

    def run(x):
        return [model(pixel_values=pad_to(x, 32), interpolate_pos_encoding=True).last_hidden_state]
    return Contender(name, model, run, f'transformers HieraModel ({args.arch}), '
                                       'interpolate_pos_encoding=True, last_hidden_state')


def _swin_t(name, args):
    H, W = args.size
    if have_mmdet():
        from mmdet.models.backbones import SwinTransformer
        model = SwinTransformer(**SWIN_T, drop_path_rate=0.0)
        init_quietly(model)
        impl = 'mmdet SwinTransformer (Swin-T)'
    else:
        import timm
        model = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False,
                                  features_only=True, img_size=(H, W),
                                  strict_img_size=False, drop_path_rate=0.0)
        impl = f'timm swin_tiny_patch4_window7_224 features_only, img_size=({H}, {W})'
    return Contender(name, model, lambda x: list(model(x)), impl)


def _r50(name, args):
    if have_mmdet():
        from mmdet.models.backbones import ResNet
        model = ResNet(depth=50, out_indices=(0, 1, 2, 3))
        init_quietly(model)
        impl = 'mmdet ResNet(depth=50)'
    else:
        import timm
        model = timm.create_model('resnet50', pretrained=False, features_only=True,
                                  out_indices=(1, 2, 3, 4))
        impl = 'timm resnet50 features_only'
    return Contender(name, model, lambda x: list(model(x)), impl)


def _onnxruntime(name, args):
    import tempfile

    import onnxruntime as ort
    import torch

    from ..models import onnx as hiera_onnx
    attention, global_blocks = HIERA_CONTENDERS[ONNX_CONTENDERS[name]]
    model = build_hiera_trunk(args.arch, attention, global_blocks).eval()
    divisor = model.size_divisor
    example = pad_to(torch.zeros(args.batch, 3, *args.size), divisor)
    hiera_onnx.register()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # as many threads as torch's rows
    options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        path = osp.join(folder, 'trunk.onnx')  # a file: large archs exceed protobuf's 2 GB
        torch.onnx.export(model, (example,), path, dynamo=False, input_names=['images'],
                          opset_version=max(17, hiera_onnx.min_opset(model)),
                          dynamic_axes={'images': {0: 'batch', 2: 'height', 3: 'width'}})
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])

    def run(x):
        return [torch.from_numpy(o) for o in session.run(None, {'images': pad_to(x, divisor).numpy()})]
    return Contender(name, model, run, f'onnxruntime {ort.__version__} CPU, Hiera(arch={args.arch!r}, '
                                       f'attention={attention!r}) exported at opset 17, dynamic size')


def build_contender(name: str, args, with_cp: bool = False) -> Contender:
    """The contender ``name`` (optionally ``hiera_mm-...@path/to/hiera.py``), seeded."""
    import torch
    torch.manual_seed(0)
    name, path = split_contender(name)
    if name in HIERA_CONTENDERS:
        return _hiera_mm(name, path, args, with_cp)
    builders = {'hf-hiera': _hf_hiera, 'swin-t': _swin_t, 'r50': _r50,
                **{n: _onnxruntime for n in ONNX_CONTENDERS}}
    if name not in builders:
        raise ValueError(f'unknown contender {name!r}')
    return builders[name](name, args)


def import_for(name: str, args) -> None:
    """Import what building ``name`` needs, so a memory baseline taken next includes it."""
    if name == 'hf-hiera':
        import transformers  # noqa: F401
    elif name in ('swin-t', 'r50'):
        __import__('mmdet.models.backbones' if have_mmdet() else 'timm')
    elif name in ONNX_CONTENDERS:
        import onnxruntime  # noqa: F401
    elif args.mm_backbone:
        from .. import mmdet  # noqa: F401  (registers HieraBackbone)
    load_hiera_module(split_contender(name)[1])
