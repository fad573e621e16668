"""What the original backbone hands on, learnt by running it: the planner builds the backbone
from the config (through the framework's model registry, without its weights), runs a small
image through it and reads the stride (input size / map size) and width (channels) of every
output. An output at stride 4, 8, 16 or 32 becomes Hiera's stage at that stride (0..3); other
outputs are refused with the reason."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
from dataclasses import dataclass
from typing import Optional

from hiera_mm.archs import SIZE_DIVISOR, STAGE_STRIDES

from .analyse import short_type

# Square inputs tried in turn: the smallest that every stage of a stride-32 backbone covers
# (2 x 2 at stride 32), then larger ones for backbones that need more.
PROBE_SIZES = (2 * SIZE_DIVISOR, 4 * SIZE_DIVISOR, 8 * SIZE_DIVISOR)
_CACHE: dict = {}  # (framework, backbone config as JSON) -> (strides, widths, default out_indices)


@dataclass
class BackboneOutputs:
    """The maps the original backbone hands on, in order: their strides and widths (None where
    the backbone could not be built: see ``remark``) and Hiera's stage for each."""
    type: str
    stages: tuple
    strides: Optional[tuple] = None
    widths: Optional[tuple] = None
    out_indices: Optional[tuple] = None  # the config's, else its class's default
    remark: str = ''  # how the stages were found where they were not probed

    def describe(self) -> str:
        """How the decisions name the old backbone's outputs."""
        numbered = (tuple(range(len(self.stages))) if self.out_indices is None
                    else tuple(self.out_indices))  # a backbone handing on all its outputs
        if numbered == tuple(self.stages):
            return f'out_indices {tuple(self.stages)}'
        if self.strides is None:
            return f'out_indices {self.out_indices}'
        at = f'maps at strides {self.strides}, widths {self.widths}'
        return at if self.out_indices is None else f'out_indices {self.out_indices}: {at}'

    def check_widths(self, positions, in_channels, reader: str, config: str) -> None:
        """Refuse a reader whose in_channels are not the widths of the outputs it is given: then
        which outputs it reads is not what the config says."""
        if self.widths is None:
            return
        widths = [self.widths[p] for p in positions]
        channels = list(in_channels) if isinstance(in_channels, (list, tuple)) else [in_channels]
        if [int(c) for c in channels] != widths:
            raise ValueError(
                f'{reader} of {config} has in_channels {in_channels!r}, but the backbone '
                f'{self.type} hands it maps of {widths} channels (probed): which maps it reads is '
                'unclear; edit the config by hand.')


def _normalise(out) -> tuple:
    out = (out,) if isinstance(out, int) else tuple(out)
    return tuple(int(i) % 4 if -4 <= int(i) < 0 else int(i) for i in out)


def _backbone_class(type_: str, framework: str, custom_imports: Optional[dict]):
    """The registered class (None: unknown), importing the framework's models and, only when
    they do not know it, the config's ``custom_imports``."""
    from mmengine.registry import DefaultScope

    registry = importlib.import_module(f'{framework}.registry').MODELS
    importlib.import_module(f'{framework}.models')
    with DefaultScope.overwrite_default_scope(framework):
        cls = registry.get(type_)
        if cls is None and custom_imports:
            from mmengine.utils import import_modules_from_strings
            import_modules_from_strings(custom_imports.get('imports') or [],
                                        allow_failed_imports=True)
            cls = registry.get(type_)
    return registry, cls


def _run(registry, backbone: dict, framework: str, btype: str, config: str) -> tuple:
    """(strides, widths) of the outputs of ``backbone`` built without weights, in eval mode."""
    import torch
    from mmengine.registry import DefaultScope

    cfg = {k: v for k, v in backbone.items() if k not in ('init_cfg', 'pretrained')}
    with torch.random.fork_rng(), torch.no_grad(), \
            DefaultScope.overwrite_default_scope(framework):
        try:
            model = registry.build(cfg)
        except Exception as err:  # noqa: BLE001 - any failure is the reason to report
            raise ValueError(
                f'backbone {btype} of {config}: building it to probe which maps it hands on '
                f'failed ({type(err).__name__}: {err}); edit the config by hand.') from err
        model.eval()  # some train() overrides return None: not chained
        errors = []
        for size in PROBE_SIZES:
            try:
                outs = model(torch.zeros(1, 3, size, size))
                break
            except Exception as err:  # noqa: BLE001 - try a larger input
                errors.append(f'{size}x{size}: {type(err).__name__}: {err}')
        else:
            raise ValueError(
                f'backbone {btype} of {config}: running it on a small image to probe which '
                f"maps it hands on failed ({'; '.join(errors)}); edit the config by hand.")
    outs = [outs] if isinstance(outs, torch.Tensor) else list(outs)
    if not outs or any(not isinstance(o, torch.Tensor) or o.dim() != 4 for o in outs):
        kinds = [tuple(o.shape) if isinstance(o, torch.Tensor) else type(o).__name__
                 for o in outs]
        raise ValueError(
            f'backbone {btype} of {config} hands on {kinds}, not feature maps (N, C, H, W) '
            "like Hiera's stages; edit the config by hand.")
    return tuple(_stride(size, o.shape[-2], o.shape[-1]) for o in outs), \
        tuple(int(o.shape[1]) for o in outs)


def _stride(size: int, height: int, width: int):
    """A map's stride on a square input: an int where it divides the input evenly, else the
    ratio; 'HxW' where height and width are strided differently (no Hiera stage is)."""
    if height != width:
        return f'{size / height:g}x{size / width:g}'
    return size // width if size % width == 0 else size / width


def probe_backbone(backbone: dict, config: str, framework: str,
                   custom_imports: Optional[dict] = None) -> BackboneOutputs:
    """The outputs the backbone of ``config`` hands on and Hiera's stage for each: built from
    ``framework``'s registry and run on a small image (``PROBE_SIZES``).

    Refused (``ValueError``, with the reason): more than four outputs, outputs that are not
    maps, maps off strides 4..32 or two at one stride (dilated or plain-ViT backbones), a
    backbone that does not build or run. A backbone of a package that is not installed (e.g.
    ``mmpretrain.ConvNeXt`` without mmpretrain) cannot be built: its stated out_indices 0..3 are
    taken as the stages (``remark`` says so), anything else is refused with the fix."""
    btype = short_type(backbone.get('type'), framework)
    stated = backbone.get('out_indices')
    out = None if stated is None else _normalise(stated)
    if out is not None and len(out) > len(STAGE_STRIDES):
        raise ValueError(
            f'backbone {btype} of {config} emits out_indices {tuple(out)}: Hiera cannot give '
            'these, it has 4 stages (out_indices 0..3 = strides 4, 8, 16, 32, each once). '
            'Edit the config by hand.')
    type_ = backbone.get('type')
    package = type_.split('.', 1)[0] if isinstance(type_, str) and '.' in type_ else None
    if package not in (None, framework) and importlib.util.find_spec(package) is None:
        return _unprobed(btype, out, package, config)
    key = (framework, json.dumps(backbone, sort_keys=True, default=repr))
    if key not in _CACHE:
        registry, cls = _backbone_class(type_, framework, custom_imports)
        if cls is None:
            raise ValueError(
                f"backbone {btype} of {config} is not in {framework}'s model registry (nor "
                "registered by the config's custom_imports): swap_backbone cannot build it to "
                'probe which maps it hands on. Install / import the package that registers it, '
                'or edit the config by hand.')
        default = inspect.signature(cls).parameters.get('out_indices')
        default = (None if default is None or default.default is inspect.Parameter.empty
                   else default.default)
        _CACHE[key] = (*_run(registry, backbone, framework, btype, config), default)
    strides, widths, default = _CACHE[key]
    if out is None and default is not None:
        out = _normalise(default)
    stages = tuple(STAGE_STRIDES.index(s) if s in STAGE_STRIDES else None for s in strides)
    if None in stages or len(set(stages)) < len(stages):
        settings = ''.join(f', its {k}={tuple(backbone[k])}' for k in ('strides', 'dilations')
                           if isinstance(backbone.get(k), (list, tuple)))
        why = (' (e.g. a dilated last stage, or the same-stride blocks of a plain ViT)'
               if None not in stages else '')
        raise ValueError(
            f'backbone {btype} of {config} hands on maps at strides {strides} (widths '
            f'{widths}; probed{settings}): they are not at strides 4, 8, 16, 32 like Hiera\'s '
            f'stages, each once{why}; edit the config by hand.')
    return BackboneOutputs(btype, stages, strides, widths, out)


def _unprobed(btype: str, out: Optional[tuple], package: str, config: str) -> BackboneOutputs:
    if out is None or any(not 0 <= i < len(STAGE_STRIDES) for i in out) \
            or len(set(out)) < len(out):
        raise ValueError(
            f'backbone {btype} of {config} comes from {package}, which is not installed here: '
            f'swap_backbone cannot build it to probe which maps it hands on (out_indices '
            f'{out}). Install {package} (pip install {package}) and run it again, or edit the '
            'config by hand.')
    remark = (f'{package} is not installed, so {btype} was not probed: its out_indices {out} '
              f'were taken as its stages at strides 4..32 (install {package} to probe them).')
    return BackboneOutputs(btype, out, out_indices=out, remark=remark)
