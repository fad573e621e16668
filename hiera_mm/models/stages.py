"""``HieraStages``: the Hiera trunk with the backbone conventions every framework shares.

Stage selection, a LayerNorm per emitted stage, frozen stages, padding to whole mask units and
pretrained loading from any checkpoint layout. Plain torch: each framework's backbone subclasses
this and adds only its own conventions (mmengine's ``init_cfg``, Detectron2's ``output_shape``),
so the parameter names (``trunk.*``, ``out_norms.stage{s}.*``) are the same in every framework.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoints
from .hiera import build_hiera, is_tracing


@dataclass
class LoadReport:
    """What ``HieraStages.load_pretrained`` did with a checkpoint."""
    source: str
    layout: str
    trunk_tensors: int
    dropped: list = field(default_factory=list)
    newly_initialised: list = field(default_factory=list)

    def summary(self) -> str:
        heads = sorted({k.split('.')[0] for k in self.dropped})
        return (f"loaded '{self.source}' (layout '{self.layout}', {self.trunk_tensors} trunk "
                f'tensors). Dropped {len(self.dropped)} tensors that are not part of the trunk '
                f"({', '.join(heads) or 'none'}). Newly initialised (missing in the checkpoint): "
                f"{', '.join(self.newly_initialised) or 'none'}.")


class HieraStages(nn.Module):
    """Hiera stage maps at strides 4, 8, 16, 32 (NCHW), for any input size.

    Args:
        arch (str | dict): 'tiny', 'small', 'base', 'base_plus', 'large', 'huge', a SAM2 trunk
            ('sam2_tiny', 'sam2_small', 'sam2_base_plus', 'sam2_large'; 'sam2.1_*' alike), timm's
            abswin models ('abswin_small', 'abswin_base' for ``hiera_{small,base}_abswin_256``)
            or a dict of ``Hiera`` arguments (embed_dim, depths, num_heads, ...).
        out_indices (Sequence[int]): stages to emit, 0 = stage 1 (stride 4) ... 3 = stage 4.
        out_norm (bool): LayerNorm on each emitted stage (new parameters, frozen with their stage).
            False emits the raw stage outputs.
        frozen_stages (int): -1 freezes nothing; 0 the patch and position embeddings; k >= 1
            also stages 1..k. Frozen parts stay frozen (and in eval mode) after ``train()``.
        drop_path_rate (float): stochastic depth, rising linearly to this over the blocks.
        with_cp (bool): activation checkpointing per block (less memory, one more forward).
        attention (str): 'exact' (pretrained computation) or 'windowed' (the formerly global
            blocks attend within windows of the 224 grid, except ``global_blocks``).
        global_blocks (Sequence[int], optional): blocks (counted over the network from 0) that
            attend globally. Default: none in 'exact' mode (where stage 3-4 blocks are global
            anyway), the last stage-3 block in 'windowed' mode; SAM2 archs (and arch dicts
            that name their own) keep theirs.
    """

    def __init__(self, arch: Union[str, dict] = 'tiny', out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_norm: bool = True, frozen_stages: int = -1, drop_path_rate: float = 0.0,
                 with_cp: bool = False, attention: str = 'exact',
                 global_blocks: Optional[Sequence[int]] = None):
        super().__init__()  # cooperative: a framework base class may follow in the MRO
        self.arch = arch if isinstance(arch, str) else 'custom'
        self.trunk = build_hiera(arch, attention=attention, global_blocks=global_blocks,
                                 drop_path_rate=drop_path_rate, with_cp=with_cp)
        num_stages = len(self.trunk.depths)

        out_indices = tuple(int(i) for i in out_indices)
        if not out_indices or any(not 0 <= i < num_stages for i in out_indices):
            raise ValueError(f'out_indices {out_indices} must name stages 0..{num_stages - 1} '
                             '(0 = stride 4, 3 = stride 32)')
        if len(set(out_indices)) != len(out_indices):
            raise ValueError(f'out_indices {out_indices} repeats a stage; list each stage once')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages={frozen_stages} is out of range: -1 (nothing), 0 '
                             f'(embeddings) or 1..{num_stages} (also stages 1..k)')
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.out_channels = [self.trunk.num_features[i] for i in out_indices]
        self.out_strides = [self.trunk.patch_stride * 2 ** i for i in out_indices]
        self.out_norms = nn.ModuleDict({
            f'stage{i + 1}': nn.LayerNorm(self.trunk.num_features[i], eps=1e-6)
            for i in out_indices}) if out_norm else None
        self._freeze_stages()

    # ------------------------------------------------------------------------------------------
    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules = [self.trunk.patch_embed]
        stage_starts = [0] + [e + 1 for e in self.trunk.stage_ends]
        for stage in range(self.frozen_stages):
            modules += list(self.trunk.blocks[stage_starts[stage]:stage_starts[stage + 1]])
            if self.out_norms is not None and f'stage{stage + 1}' in self.out_norms:
                modules.append(self.out_norms[f'stage{stage + 1}'])
        return modules

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        self.trunk.pos_embed.requires_grad_(False)
        if self.trunk.pos_embed_window is not None:
            self.trunk.pos_embed_window.requires_grad_(False)
        for module in self._frozen_modules():
            module.eval()
            module.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    # ------------------------------------------------------------------------------------------
    def load_pretrained(self, source: str) -> LoadReport:
        """Load trunk weights (and out norms, if the checkpoint has ours) from any layout.

        Raises ``CheckpointError`` naming the arch the checkpoint looks like when it does not fit.
        """
        return self.load_pretrained_state(checkpoints.read_state_dict(source), str(source))

    def load_pretrained_state(self, state: dict, source: str = '<state dict>') -> LoadReport:
        """``load_pretrained`` for a checkpoint already read into a dict (any layout)."""
        conv = checkpoints.convert_state_dict(state)
        trunk_state = conv['trunk']
        self._check_fits(trunk_state, source)
        if tuple(trunk_state['pos_embed'].shape) != tuple(self.trunk.pos_embed.shape):
            # Another pretraining grid (same width): keep the checkpoint's values; the trunk
            # resizes the embedding to each input's grid anyway. Same Parameter object, so an
            # optimizer built before loading (Detectron2 does that) still holds it.
            own = self.trunk.pos_embed
            own.data = own.new_empty(trunk_state['pos_embed'].shape)
        self.trunk.load_state_dict(trunk_state, strict=True)
        missing_norms = []
        if self.out_norms is not None:
            for name, norm in self.out_norms.items():
                own = {k[len(name) + 1:]: v for k, v in conv['out_norms'].items()
                       if k.startswith(name + '.')}
                if own:
                    norm.load_state_dict(own)
                else:
                    missing_norms.append(f'out_norms.{name}')
        return LoadReport(source=str(source), layout=conv['layout'],
                          trunk_tensors=len(trunk_state), dropped=list(conv['dropped']),
                          newly_initialised=missing_norms)

    def _check_fits(self, trunk_state: dict, source: str) -> None:
        own = self.trunk.state_dict()
        mismatched = [
            f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
            for k, v in trunk_state.items()
            if k in own and v.shape != own[k].shape
            and not (k == 'pos_embed' and v.shape[:2] == own[k].shape[:2])]
        missing = sorted(set(own) - set(trunk_state))
        unexpected = sorted(set(trunk_state) - set(own))
        if not (mismatched or missing or unexpected):
            return
        looks_like = checkpoints.guess_arch(trunk_state)
        problems = []
        if mismatched:
            problems.append(f'{len(mismatched)} shape mismatches, e.g. ' + '; '.join(mismatched[:3]))
        if missing:
            problems.append(f'{len(missing)} trunk tensors missing, e.g. ' + ', '.join(missing[:3]))
        if unexpected:
            problems.append(f'{len(unexpected)} unexpected trunk tensors, e.g. '
                            + ', '.join(unexpected[:3]))
        hint = (f"The checkpoint looks like arch '{looks_like}' but the backbone was built as "
                f"arch '{self.arch}': set arch='{looks_like}'."
                if looks_like and looks_like != self.arch else
                'The file may be truncated or from another model.')
        raise checkpoints.CheckpointError(
            f"checkpoint '{source}' does not fit {type(self).__name__}(arch="
            f"'{self.arch}'): {'. '.join(problems)}. {hint}")

    # ------------------------------------------------------------------------------------------
    def layer_id(self, name: str) -> int:
        """Layer-wise lr decay id of a parameter, named relative to this module.

        0 for the patch and position embeddings, ``g + 1`` for block ``g`` (counted over all
        stages), one above its stage's last block for ``out_norms.stage{s}``, and ``L + 1``
        (``L`` = number of blocks) for anything else; ``lr_decay_scale`` turns it into a factor.
        """
        return hiera_layer_id(name, len(self.trunk.blocks), self.trunk.stage_ends)

    @property
    def num_layers(self) -> int:
        """Number of layer-decay layers, ids ``0 .. L + 1``."""
        return len(self.trunk.blocks) + 2

    # ------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        in_chans = self.trunk.patch_embed.proj.in_channels
        # While tracing, sizes are graph values: checking them would only warn (and freeze).
        if not is_tracing() and (x.dim() != 4 or x.shape[1] != in_chans or min(x.shape[2:]) < 1):
            raise ValueError(f'{type(self).__name__} expects images as a (B, {in_chans}, H, W) '
                             f'tensor with H, W >= 1, got shape {tuple(x.shape)}')
        if not x.is_floating_point():
            raise TypeError(f'{type(self).__name__} expects a floating point tensor, got '
                            f'{x.dtype}: normalise the images first (the framework\'s '
                            'preprocessor does)')
        # Pad bottom/right to whole mask units; outputs cover the padded size (as mmdet's Swin).
        # (A pad of zero too while tracing: the graph must pad at every size.)
        d = self.trunk.size_divisor
        pad_h, pad_w = (-x.shape[2]) % d, (-x.shape[3]) % d
        if is_tracing() or pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        stages = self.trunk(x)
        outs = []
        for i in self.out_indices:
            y = stages[i]
            if self.out_norms is not None:
                y = self.out_norms[f'stage{i + 1}'](y)
            outs.append(y.permute(0, 3, 1, 2).contiguous())
        return tuple(outs)


_BLOCK_RE = re.compile(r'^trunk\.blocks\.(\d+)(?:\.|$)')
_OUT_NORM_RE = re.compile(r'^out_norms\.stage(\d+)(?:\.|$)')


def hiera_layer_id(name: str, num_blocks: int, stage_ends: Sequence[int]) -> int:
    """Layer-decay id of a ``HieraStages`` parameter named relative to the backbone module.

    ``trunk.patch_embed.*`` and ``trunk.pos_embed*``: 0; ``trunk.blocks.{g}.*``: ``g + 1``;
    ``out_norms.stage{s}.*``: ``stage_ends[s - 1] + 2`` (the norm on the last stage lands in
    ``L + 1``); anything else: ``L + 1``. ``lr_decay_scale`` gives the lr factor of an id.
    """
    top = num_blocks + 1
    if name.startswith(('trunk.patch_embed.', 'trunk.pos_embed')):
        return 0
    match = _BLOCK_RE.match(name)
    if match is not None:
        block = int(match.group(1))
        if block >= num_blocks:
            raise ValueError(f'{name!r} refers to block {block}, but the trunk has only '
                             f'{num_blocks} blocks')
        return block + 1
    match = _OUT_NORM_RE.match(name)
    if match is not None:
        stage = int(match.group(1))
        if not 1 <= stage <= len(stage_ends):
            raise ValueError(f'{name!r} refers to stage {stage}, but stage_ends '
                             f'{list(stage_ends)} describes {len(stage_ends)} stages (1-based)')
        return min(int(stage_ends[stage - 1]) + 2, top)
    return top


def lr_decay_scale(rate: float, layer_id: int, num_blocks: int) -> float:
    """lr factor of layer ``layer_id`` under layer-wise decay ``rate``: ``rate ** (L + 1 - id)``.

    The top layer ``L + 1`` (neck and heads, ``L`` = number of blocks) trains at the full lr,
    the patch and position embeddings (layer 0) at ``rate ** (L + 1)`` of it.
    """
    return rate ** (num_blocks + 1 - layer_id)


def strip_ddp_prefix(name: str) -> str:
    """A parameter or state-dict key without the ``module.`` prefixes that DDP / DataParallel
    wrappers add (``'module.backbone.x'`` -> ``'backbone.x'``)."""
    while name.startswith('module.'):
        name = name[len('module.'):]
    return name


__all__ = ['HieraStages', 'LoadReport', 'hiera_layer_id', 'lr_decay_scale', 'strip_ddp_prefix']
