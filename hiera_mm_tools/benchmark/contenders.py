"""The models compared: a registry of contenders, which of them can be built here, and how each
is called.

The harness registers the rows that need only torch and the library (the hiera_mm trunk, the
same trunk under onnxruntime), transformers' Hiera, and timm's Swin-T / ResNet-50. A framework
plug-in (``hiera_mm_tools.benchmark.openmmlab``, ``.detectron2``) registers its own rows with
``register`` when it is loaded (``load_plugins``); it may also give another implementation of a
name (mmdet's Swin-T before timm's): the first implementation that can be built here is used.

Weights are random (the speed does not depend on them); drop path is off in every contender.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os.path as osp
import sys
from typing import Callable, Optional

from hiera_mm.archs import ARCH_SETTINGS, SIZE_DIVISOR

from .environment import has_module

HIERA_CONTENDERS = {
    # name: (attention, global_blocks)
    'hiera_mm-exact': ('exact', None),
    'hiera_mm-windowed': ('windowed', None),
    'hiera_mm-windowed-noglobal': ('windowed', ()),
}
# The same trunk exported (TorchScript-based ONNX exporter) and run by onnxruntime on the CPU.
ONNX_CONTENDERS = {'onnxruntime-exact': 'hiera_mm-exact', 'onnxruntime-windowed': 'hiera_mm-windowed'}
HF_HIERA_ARCHS = ('tiny', 'small', 'base', 'base_plus', 'large', 'huge')
SWIN_T = dict(embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
              out_indices=(0, 1, 2, 3))
HIERA_FILE = osp.join(osp.dirname(importlib.util.find_spec('hiera_mm').origin), 'models',
                      'hiera.py')


class Contender:
    """A model and how to call it: ``run(x)`` returns a list of output tensors."""

    def __init__(self, name, module, run, impl):
        self.name, self.module, self.run, self.impl = name, module, run, impl
        self.params_m = sum(p.numel() for p in module.parameters()) / 1e6


@dataclasses.dataclass
class Implementation:
    """One way to build a contender.

    ``build(name, args, with_cp)`` -> ``Contender``; ``why_not(args)``: None when it can be built
    here, else the reason; ``pads``: the input is zero-padded to multiples of 32 (a note says
    so); ``imports``: modules its build needs (a memory baseline imports them first);
    ``default``: part of the default selection (else only when named)."""
    build: Callable
    why_not: Callable[[object], Optional[str]] = lambda args: None
    pads: bool = False
    imports: tuple = ()
    default: bool = True


#: contender name -> its implementations, the preferred one first
REGISTRY: dict[str, list[Implementation]] = {}
#: the plug-in modules loaded (a memory child loads the same)
PLUGINS: list[str] = []


def register(name: str, impl: Implementation, first: bool = False) -> None:
    """Add an implementation of ``name`` (``first``: preferred to those already registered)."""
    impls = REGISTRY.setdefault(name, [])
    impls.insert(0, impl) if first else impls.append(impl)


def load_plugins(modules) -> None:
    """Import plug-in modules, which register their contenders (and extras)."""
    for module in modules:
        if module not in PLUGINS:
            importlib.import_module(module)
            PLUGINS.append(module)


def split_contender(name: str) -> tuple[str, str | None]:
    """'hiera_mm-exact@/tmp/hiera.py' -> ('hiera_mm-exact', '/tmp/hiera.py')."""
    base, _, path = name.partition('@')
    return base, (path or None)


def all_names() -> list:
    return list(REGISTRY)


def default_names() -> list:
    return [n for n, impls in REGISTRY.items() if any(i.default for i in impls)]


def implementation(name: str, args) -> tuple[Implementation | None, str | None]:
    """(the first implementation of ``name`` that can be built here, None) or (None, why not)."""
    base, path = split_contender(name)
    if base not in REGISTRY:
        return None, f'unknown contender (choose from {", ".join(REGISTRY)})'
    if path is not None:
        if base not in HIERA_CONTENDERS:
            return None, 'only the hiera_mm contenders take @path/to/hiera.py'
        if not osp.isfile(path):
            return None, f'no file {path}'
    reasons = []
    for impl in REGISTRY[base]:
        why = impl.why_not(args)
        if why is None:
            if path is not None and impl.build is not build_hiera_mm:
                return None, f'{impl.build.__module__} builds its own hiera_mm, not @path'
            return impl, None
        reasons.append(why)
    return None, '; '.join(dict.fromkeys(reasons))


def unavailable_reason(name: str, args) -> str | None:
    """Why ``name`` cannot be built here (None when it can)."""
    return implementation(name, args)[1]


def pads(name: str, args) -> bool:
    impl = implementation(name, args)[0]
    return impl is not None and impl.pads


def select_contenders(args) -> tuple[list, list]:
    """(names to run, notes): ``--contenders`` or every default contender that can be built here.

    A name the user gave that is unknown (or a path that cannot be used) ends the program; known
    ones that cannot be built here are skipped, noted.
    """
    notes, names = [], []
    for name in args.contenders or default_names():
        why = unavailable_reason(name, args)
        if why is None:
            names.append(name)
        elif args.contenders is not None and name not in REGISTRY:
            sys.exit(f'--contenders: {name}: {why}')
        else:
            notes.append(f'{name} skipped: {why}')
    if any(s % SIZE_DIVISOR for s in args.size) and any(pads(n, args) for n in names):
        notes.append(f'the input is zero-padded to multiples of {SIZE_DIVISOR} for the rows of '
                     + ', '.join(n for n in names if pads(n, args)))
    return names, notes


def build_contender(name: str, args, with_cp: bool = False) -> Contender:
    """The contender ``name`` (optionally ``hiera_mm-...@path/to/hiera.py``), seeded."""
    import torch
    impl, why = implementation(name, args)
    if impl is None:
        raise ValueError(f'contender {name!r}: {why}')
    torch.manual_seed(0)
    return impl.build(name, args, with_cp)


def import_for(name: str, args) -> None:
    """Import what building ``name`` needs, so a memory baseline taken next includes it."""
    impl = implementation(name, args)[0]
    for module in (impl.imports if impl else ()):
        importlib.import_module(module)
    base, path = split_contender(name)
    if base in HIERA_CONTENDERS or base in ONNX_CONTENDERS:
        load_hiera_module(path)


# ----------------------------------------------------------------------------------------------
# the library's trunk, another copy of hiera.py, the trunk under onnxruntime
def load_hiera_module(path: str | None = None):
    """``hiera_mm.models.hiera`` (plain torch), or another copy of that file at ``path`` (an older
    revision, a change to compare). The copy is loaded as a module of the ``hiera_mm.models``
    package under a name of its own, so that its relative imports (``from ..archs import ...``)
    resolve to the installed library, as the file's own would."""
    path = osp.abspath(path or HIERA_FILE)
    if path == osp.abspath(HIERA_FILE):
        from hiera_mm.models import hiera
        return hiera
    import hiera_mm.models as package
    name = (f'{package.__name__}._benchmark_copy_'
            + ''.join(c if c.isalnum() else '_' for c in path))
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def pad_to(x, divisor=SIZE_DIVISOR):
    import torch.nn.functional as F
    pad_h, pad_w = (-x.shape[-2]) % divisor, (-x.shape[-1]) % divisor
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


def build_hiera_trunk(arch, attention='exact', global_blocks=None, with_cp=False, path=None):
    hiera = load_hiera_module(path)
    model = hiera.build_hiera(arch, attention=attention, global_blocks=global_blocks,
                              with_cp=with_cp)
    model.init_weights()
    return model


def build_hiera_mm(name, args, with_cp=False):
    name, path = split_contender(name)
    attention, global_blocks = HIERA_CONTENDERS[name]
    model = build_hiera_trunk(args.arch, attention, global_blocks, with_cp, path)
    divisor = model.size_divisor
    return Contender(name, model, lambda x: model(pad_to(x, divisor)),
                     f'{path or "hiera.py"} Hiera(arch={args.arch!r}, '
                     f'attention={attention!r}, global_blocks={model.global_blocks})')


def _no_mm_backbone(args):
    if getattr(args, 'mm_backbone', False):
        return '--mm-backbone: the openmmlab plug-in (with mmdet installed) builds these rows'
    return None


def build_hf_hiera(name, args, with_cp=False):
    from transformers import HieraConfig, HieraModel
    s = ARCH_SETTINGS[args.arch]
    config = HieraConfig(embed_dim=s['embed_dim'], depths=list(s['depths']),
                         num_heads=list(s['num_heads']))
    model = HieraModel(config, add_pooling_layer=False)

    def run(x):
        return [model(pixel_values=pad_to(x), interpolate_pos_encoding=True).last_hidden_state]
    return Contender(name, model, run, f'transformers HieraModel ({args.arch}), '
                                       'interpolate_pos_encoding=True, last_hidden_state')


def _hf_why_not(args):
    if not has_module('transformers'):
        return 'transformers is not installed'
    if args.arch not in HF_HIERA_ARCHS:
        return f"transformers' HieraModel has no '{args.arch}' (SAM2) trunk"
    return None


def build_onnxruntime(name, args, with_cp=False):
    import tempfile

    import onnxruntime as ort
    import torch

    from hiera_mm.models import onnx as hiera_onnx

    from ..export.runtime import onnxruntime_session
    attention, global_blocks = HIERA_CONTENDERS[ONNX_CONTENDERS[name]]
    model = build_hiera_trunk(args.arch, attention, global_blocks).eval()
    divisor = model.size_divisor
    example = pad_to(torch.zeros(args.batch, 3, *args.size), divisor)
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        path = osp.join(folder, 'trunk.onnx')  # a file: large archs exceed protobuf's 2 GB
        opset = hiera_onnx.export(model, (example,), path, input_names=['images'],
                                  dynamic_axes={'images': {0: 'batch', 2: 'height', 3: 'width'}})
        session = onnxruntime_session(path)

    def run(x):
        return [torch.from_numpy(o) for o in session.run(None, {'images': pad_to(x, divisor).numpy()})]
    return Contender(name, model, run, f'onnxruntime {ort.__version__} CPU, Hiera(arch={args.arch!r}, '
                                       f'attention={attention!r}) exported at opset {opset}, dynamic size')


def onnxruntime_why_not(args):
    """Why an onnxruntime row cannot run here (None when it can)."""
    if not (has_module('onnxruntime') and has_module('onnx')):
        return "onnx / onnxruntime are not installed (pip install 'hiera_mm[deploy]')"
    if args.mode != 'fwd' or args.device != 'cpu' or args.dtype != 'fp32':
        return 'onnxruntime rows run forward only, fp32 on the CPU (--mode fwd)'
    return None


def _timm_why_not(args):
    return None if has_module('timm') else 'timm is not installed'


def build_timm_swin_t(name, args, with_cp=False):
    import timm
    H, W = args.size
    model = timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, features_only=True,
                              img_size=(H, W), strict_img_size=False, drop_path_rate=0.0)
    return Contender(name, model, lambda x: list(model(x)),
                     f'timm swin_tiny_patch4_window7_224 features_only, img_size=({H}, {W})')


def build_timm_r50(name, args, with_cp=False):
    import timm
    model = timm.create_model('resnet50', pretrained=False, features_only=True,
                              out_indices=(1, 2, 3, 4))
    return Contender(name, model, lambda x: list(model(x)), 'timm resnet50 features_only')


for _name in HIERA_CONTENDERS:
    register(_name, Implementation(build_hiera_mm, _no_mm_backbone, pads=True))
register('hf-hiera', Implementation(build_hf_hiera, _hf_why_not, pads=True,
                                    imports=('transformers',)))
register('swin-t', Implementation(build_timm_swin_t, _timm_why_not, imports=('timm',)))
register('r50', Implementation(build_timm_r50, _timm_why_not, imports=('timm',)))
for _name in ONNX_CONTENDERS:
    register(_name, Implementation(build_onnxruntime, onnxruntime_why_not, pads=True,
                                   imports=('onnxruntime',)))


# ----------------------------------------------------------------------------------------------
# extras: measurements beside the contender rows, which plug-ins may add (``--train-step``)
@dataclasses.dataclass
class Extra:
    """``run(args)`` -> a JSON-able dict; ``table(result, config)`` -> its markdown section;
    ``why_not()``: None when it can run here, else the reason."""
    run: Callable
    table: Callable
    why_not: Callable[[], Optional[str]] = lambda: None


#: results key (also the tool's option, ``train_step`` for ``--train-step``) -> the extra
EXTRAS: dict[str, Extra] = {}


def register_extra(key: str, extra: Extra) -> None:
    EXTRAS[key] = extra
