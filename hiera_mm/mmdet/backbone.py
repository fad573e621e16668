"""``HieraBackbone``: the Hiera trunk with MMDetection's backbone conventions around it."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn

from mmdet.registry import MODELS

from ..checkpoints import CheckpointError, convert_state_dict, guess_arch, read_state_dict
from ..models.hiera import ARCH_SETTINGS, build_hiera


@MODELS.register_module()
class HieraBackbone(BaseModule):
    """Hiera as a detection backbone: stage maps at strides 4, 8, 16, 32 (NCHW).

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
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...)`` with an
            ``hf://`` hub id, a save_pretrained folder or a .safetensors/.bin/.pth file in any
            layout of ``hiera_mm.checkpoints``.
    """

    def __init__(self, arch: Union[str, dict] = 'tiny', out_indices: Sequence[int] = (0, 1, 2, 3),
                 out_norm: bool = True, frozen_stages: int = -1, drop_path_rate: float = 0.0,
                 with_cp: bool = False, attention: str = 'exact',
                 global_blocks: Optional[Sequence[int]] = None, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
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

    def train(self, mode: bool = True) -> 'HieraBackbone':
        super().train(mode)
        self._freeze_stages()
        return self

    # ------------------------------------------------------------------------------------------
    def init_weights(self) -> None:
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            if 'checkpoint' not in cfg:
                raise ValueError("init_cfg of type 'Pretrained' needs a 'checkpoint' "
                                 "(e.g. 'hf://facebook/hiera-tiny-224-hf')")
            self.load_pretrained(cfg['checkpoint'])
            self._is_init = True
            return
        self.trunk.init_weights()
        super().init_weights()

    def load_pretrained(self, source: str) -> None:
        """Load trunk weights from any supported layout; log what was mapped, dropped, missing."""
        conv = convert_state_dict(read_state_dict(source))
        trunk_state = conv['trunk']
        self._check_fits(trunk_state, source)
        if tuple(trunk_state['pos_embed'].shape) != tuple(self.trunk.pos_embed.shape):
            # Another pretraining grid (same width): keep the checkpoint's values; the trunk
            # resizes the embedding to each input's grid anyway.
            self.trunk.pos_embed = nn.Parameter(torch.empty_like(trunk_state['pos_embed']),
                                                requires_grad=self.trunk.pos_embed.requires_grad)
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
        dropped = conv['dropped']
        heads = sorted({k.split('.')[0] for k in dropped})
        print_log(
            f"HieraBackbone: loaded '{source}' (layout '{conv['layout']}', "
            f'{len(trunk_state)} trunk tensors). Dropped {len(dropped)} tensors that are not part '
            f"of the trunk ({', '.join(heads) or 'none'}). Newly initialised (missing in the "
            f"checkpoint): {', '.join(missing_norms) or 'none'}.", logger='current')

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
        looks_like = guess_arch(trunk_state)
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
        raise CheckpointError(f"checkpoint '{source}' does not fit HieraBackbone(arch="
                              f"'{self.arch}'): {'. '.join(problems)}. {hint}")

    # ------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        in_chans = self.trunk.patch_embed.proj.in_channels
        if x.dim() != 4 or x.shape[1] != in_chans or min(x.shape[2:]) < 1:
            raise ValueError(f'HieraBackbone expects images as a (B, {in_chans}, H, W) tensor with '
                             f'H, W >= 1, got shape {tuple(x.shape)}')
        if not x.is_floating_point():
            raise TypeError(f'HieraBackbone expects a floating point tensor, got {x.dtype}: '
                            'normalise the images first (mmdet does in its data_preprocessor)')
        # Pad bottom/right to whole mask units; outputs cover the padded size (as mmdet's Swin).
        d = self.trunk.size_divisor
        pad_h, pad_w = (-x.shape[2]) % d, (-x.shape[3]) % d
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        stages = self.trunk(x)
        outs = []
        for i in self.out_indices:
            y = stages[i]
            if self.out_norms is not None:
                y = self.out_norms[f'stage{i + 1}'](y)
            outs.append(y.permute(0, 3, 1, 2).contiguous())
        return tuple(outs)


__all__ = ['HieraBackbone', 'ARCH_SETTINGS', 'CheckpointError']
