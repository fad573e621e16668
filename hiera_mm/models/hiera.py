"""Hiera (Ryali et al., ICML 2023) in plain torch, for dense prediction at any input size.

The reference implementations (FAIR's ``hiera``, timm, transformers) "unroll" the token sequence so
that mask units become contiguous, and fix that ordering for one image size at construction. The
same computation is expressed here in spatial NHWC order, with every size derived per forward:

* mask-unit attention   == attention inside non-overlapping windows of one mask unit
                           (8x8 tokens at stride 4, 4x4 at stride 8, 2x2 at stride 16);
* query pooling          == 2x2 max pooling of the queries inside each window (or over the whole
                           map for global attention) and of the residual branch;
* global attention       == attention over all tokens (token order never matters there).

So the pretrained weights give the pretrained function at 224 and the natural extension at any size
that is a multiple of 32 pixels (a mask unit). SAM2's Hiera trunk is the same network with other
window sizes and an absolute-window position embedding; timm's ``hiera_*_abswin_256`` adds LayerScale
and (small) a parameter-free stage widening. All are covered by ``Hiera`` below.

This file imports nothing but torch and ``hiera_mm.archs``, so it runs without any framework.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..archs import MASK_UNIT_SIZE, PATCH_STRIDE, check_arch, stage_widths

ATTENTION_MODES = ('exact', 'windowed')


def _is_compiling() -> bool:
    """Whether torch.compile is tracing (``torch.compiler.is_compiling`` arrived in torch 2.3)."""
    if hasattr(torch.compiler, 'is_compiling'):
        return torch.compiler.is_compiling()
    return torch._dynamo.is_compiling()


def is_tracing() -> bool:
    """Whether the forward is being recorded into a graph (``torch.jit.trace``, either ONNX
    exporter, ``torch.export`` or ``torch.compile``), where sizes are symbols, not numbers."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or _is_compiling()


# While a graph is recorded, size arithmetic never decides which operations run: padding by zero is
# still a pad and a crop to the full size still a slice, so the graph stays right at every input
# size, not only at the one it was recorded at. Eager calls skip the no-op pads (each one a copy).


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * num_windows, window, window, C), zero-padding H and W up to the window."""
    B, H, W, C = x.shape
    pad_h, pad_w = (-H) % window, (-W) % window
    if is_tracing() or pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    Hp, Wp = H + pad_h, W + pad_w
    x = x.view(B, Hp // window, window, Wp // window, window, C).transpose(2, 3)
    return x.reshape(-1, window, window, C), (Hp, Wp)


def max_pool_nhwc(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Non-overlapping max pooling of a (..., H, W, C) map: Hiera's query pooling.

    The elementwise maximum of the ``stride**2`` interleaved sub-grids, taken as views: it also
    reads a strided map (queries sliced out of the qkv projection) in place, is several times
    faster on CPU than ``amax`` over two interleaved dimensions, and keeps every size an exact
    quotient, which keeps torch.compile's symbolic shapes simple.
    """
    if stride == 1:
        return x
    *lead, H, W, C = x.shape
    grid = x.view(*lead, H // stride, stride, W // stride, stride, C)
    out = grid[..., 0, :, 0, :]
    for i in range(stride):
        for j in range(stride):
            if i or j:
                out = torch.maximum(out, grid[..., i, :, j, :])
    return out


def mean_pool_nhwc(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Non-overlapping average pooling of a (B, H, W, C) map."""
    if stride == 1:
        return x
    B, H, W, C = x.shape
    return x.reshape(B, H // stride, stride, W // stride, stride, C).mean(dim=(2, 4))


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the residual branch of whole samples."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class PooledAttention(nn.Module):
    """Multi-head attention over windows (``window > 0``) or all tokens, with optional query pooling.

    ``window`` is in tokens of the input map. With ``q_stride`` 2 the queries are max pooled 2x2 inside
    each window, so the output map is half the input size (Hiera's stage transitions).
    """

    def __init__(self, dim: int, dim_out: int, *, num_heads: int, q_stride: int = 1,
                 window: int = 0):
        super().__init__()
        if dim_out % num_heads:
            raise ValueError(f'dim_out {dim_out} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim_out // num_heads
        self.q_stride = q_stride
        self.window = window
        self.qkv = nn.Linear(dim, 3 * dim_out)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, _ = x.shape
        if self.window:
            x, padded_hw = window_partition(x, self.window)
        n = x.shape[0]
        heads, s = self.num_heads, self.q_stride
        # q, k, v stay strided views of the projection, (n, h, w, heads * head_dim) each; q is pooled
        # before the heads are split, in one pass and without a copy of its own.
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q = max_pool_nhwc(q, s)
        hq, wq, dim_out = q.shape[1:]
        q, k, v = (t.reshape(n, t.shape[1] * t.shape[2], heads, self.head_dim).transpose(1, 2)
                   for t in (q, k, v))
        x = F.scaled_dot_product_attention(q, k, v)  # (n, heads, hq * wq, head_dim)
        if not self.window:
            return self.proj(x.transpose(1, 2).reshape(n, hq, wq, dim_out))
        # Merge the heads and undo the window partition in a single copy. The window is a plain
        # int here, not a traced size: simpler symbolic shapes under torch.compile.
        Hp, Wp, win = padded_hw[0] // s, padded_hw[1] // s, self.window // s
        x = x.view(B, Hp // win, Wp // win, heads, win, win, self.head_dim)
        x = x.permute(0, 1, 4, 2, 5, 3, 6)  # (B, rows, win, cols, win, heads, head_dim)
        x = self.proj(x.reshape(B, Hp, Wp, dim_out))
        return x[:, :H // s, :W // s].contiguous()  # no copy where nothing was padded


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        # Without autograd GELU runs in place: one fresh hidden-width buffer less per block.
        x = self.act(x) if torch.is_grad_enabled() else torch.ops.aten.gelu_(x)
        return self.fc2(x)


# Mixed precision, the dtype policy: under torch.autocast (bf16 or fp16) the linear layers, the
# attention and the MLP compute in the low dtype, but the residual stream (patch embedding plus
# position embedding, then every block's sum) stays in the dtype of the weights, fp32, as timm's and
# transformers' ViTs keep it. So the stage maps come out in fp32 in training and in inference
# alike, and the low-precision rounding of each branch is not accumulated over the blocks.
# Without autocast nothing changes: every cast below is a no-op and fp32 results are bit-exact.


def residual_add(branch: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``residual + branch`` without autograd: in place into the fresh branch output when the two
    share a dtype (one buffer less), else (autocast) a new tensor in the residual's dtype."""
    if branch.dtype == residual.dtype:
        return branch.add_(residual)
    return residual + branch  # promotes the low-precision branch to the residual's fp32


class LayerScale(nn.Module):
    """Learned per-channel gain on a residual branch (timm's ``ls1`` / ``ls2``)."""

    def __init__(self, dim: int, init_value: float = 1e-5):
        super().__init__()
        self.init_value = init_value
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class HieraBlock(nn.Module):
    """Pre-norm transformer block on NHWC maps; a stage's first block also pools and widens.

    ``q_stride``, ``window``: as in ``PooledAttention``. The options without a default come from
    ``Hiera`` (which documents them and holds their defaults), the same for every block:
    ``layer_scale``: initial LayerScale gain on both branches (None: none, no parameters).
    ``expand_proj``: widen the residual with a linear projection; if False the width must double and
    the residual becomes [max pool, mean pool] of the block input (timm's ``use_expand_proj=False``).
    """

    def __init__(self, dim: int, dim_out: int, *, num_heads: int, mlp_ratio: float,
                 norm_eps: float, layer_scale: Optional[float], expand_proj: bool,
                 q_stride: int = 1, window: int = 0, drop_path_rate: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = PooledAttention(dim, dim_out, num_heads=num_heads, q_stride=q_stride,
                                    window=window)
        self.norm2 = nn.LayerNorm(dim_out, eps=norm_eps)
        self.mlp = Mlp(dim_out, int(dim_out * mlp_ratio))
        # Identity when unused: no parameters, so state-dict names of the other archs stay the same.
        self.ls1 = LayerScale(dim_out, layer_scale) if layer_scale is not None else nn.Identity()
        self.ls2 = LayerScale(dim_out, layer_scale) if layer_scale is not None else nn.Identity()
        # The residual follows the attention output: projected when the width changes, pooled when
        # the queries are. Projecting the normed input follows the reference implementation.
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out and expand_proj else None
        self.pool_expand = dim != dim_out and not expand_proj
        if self.pool_expand and dim_out != 2 * dim:
            raise ValueError(f'expand_proj=False needs the width to double, got {dim} -> {dim_out}')
        self.q_stride = q_stride
        self.drop_path_rate = drop_path_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        if self.proj is not None:
            # The widened residual keeps the stream's dtype (see residual_add); a no-op in fp32.
            x = self.proj(x_norm).to(x.dtype)
        if self.pool_expand:  # the un-normed input, as in timm
            x = torch.cat([max_pool_nhwc(x, self.q_stride),
                           mean_pool_nhwc(x, self.q_stride)], dim=-1)
        else:
            x = max_pool_nhwc(x, self.q_stride)
        if not torch.is_grad_enabled() and not (self.training and self.drop_path_rate):
            # Inference: accumulate the residual into the fresh branch outputs (fewer buffers).
            x = residual_add(self.ls1(self.attn(x_norm)), x)
            return residual_add(self.ls2(self.mlp(self.norm2(x))), x)
        x = x + drop_path(self.ls1(self.attn(x_norm)), self.drop_path_rate, self.training)
        return x + drop_path(self.ls2(self.mlp(self.norm2(x))), self.drop_path_rate, self.training)

    def extra_repr(self) -> str:
        return (f'window={self.attn.window or "global"}, q_stride={self.q_stride}, '
                f'drop_path={self.drop_path_rate:.3f}')


class BlockSpec(NamedTuple):
    """Where a block sits and how it attends."""
    stage: int
    q_stride: int  # 2: pools its queries, halving the map (a stage's first block)
    window: int  # attention window in tokens of the block's input; 0: global


def _block_layout(*, depths, mask_unit_attn, num_q_pool, window_sizes, global_blocks, attention,
                  pretrain_tokens, mask_unit) -> list[BlockSpec]:
    """One ``BlockSpec`` per block.

    A stage's first block still attends with the previous stage's pattern (in its input, before
    pooling): Hiera's "lag by one block", which SAM2 keeps too.
    """
    layout = []
    for stage, depth in enumerate(depths):
        for j in range(depth):
            first = j == 0 and stage > 0
            in_stage = stage - 1 if first else stage  # stage whose resolution the block reads
            q_stride = 2 if first and stage <= num_q_pool else 1
            if len(layout) in global_blocks:
                window = 0
            elif window_sizes is not None:  # SAM2 layout: an explicit window per stage
                window = window_sizes[in_stage]
            elif mask_unit_attn[stage] or (first and mask_unit_attn[in_stage]):
                window = mask_unit // 2 ** in_stage
            elif attention == 'windowed':
                # The context a global block had at pretraining size: the whole 224 grid.
                window = pretrain_tokens // 2 ** in_stage
            else:
                window = 0
            layout.append(BlockSpec(stage, q_stride, window))
    return layout


def _check_arch(*, depths, num_heads, mask_unit_attn, window_sizes, attention, pos_embed,
                  drop_path_rate) -> None:
    if len(depths) != len(num_heads) or len(depths) != len(mask_unit_attn):
        raise ValueError(f'depths {depths}, num_heads {num_heads} and mask_unit_attn '
                         f'{tuple(mask_unit_attn)} must have one entry per stage')
    if attention not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, got '{attention}'")
    if pos_embed not in ('abs', 'abs_win'):
        raise ValueError(f"pos_embed must be 'abs' or 'abs_win', got '{pos_embed}'")
    if any(d < 1 for d in depths):
        raise ValueError(f'depths {depths}: every stage needs at least one block')
    if window_sizes is not None and len(window_sizes) != len(depths):
        raise ValueError(f'window_sizes {tuple(window_sizes)} must have one entry per stage '
                         f'({len(depths)})')
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate}')


def _resolve_global_blocks(global_blocks, *, depths, attention, window_sizes) -> tuple[int, ...]:
    """The sorted global block indices; the one place that decides their default (None)."""
    if global_blocks is None:
        # Windowed mode's default: one global block, the last of stage 3, so every stage-3/4
        # token has seen the whole image before the last stage and the neck (see README). Window
        # layouts given per stage (SAM2) name their global blocks in their arch.
        windowed = attention == 'windowed' and window_sizes is None
        global_blocks = (sum(depths[:3]) - 1,) if windowed else ()
    global_blocks = tuple(sorted(set(int(g) for g in global_blocks)))
    stage3_start, num_blocks = sum(depths[:2]), sum(depths)
    bad = [g for g in global_blocks if not stage3_start <= g < num_blocks]
    if bad:
        raise ValueError(
            f'global_blocks {bad} are not stage-3 or stage-4 blocks: with depths {depths} those '
            f'are {stage3_start}..{num_blocks - 1} (indices count blocks over the whole network '
            'from 0, as SAM2 does)')
    return global_blocks


class Hiera(nn.Module):
    """Hiera trunk returning the four stage maps in NHWC (strides 4, 8, 16, 32).

    Args:
        embed_dim, depths, num_heads: width, blocks per stage and heads per stage.
        mlp_ratio: MLP hidden width over block width.
        attention: 'exact' is the pretrained computation (mask-unit attention in stages 1-2 and the
            first block of stage 3, global attention after). 'windowed' keeps that, but the blocks
            that were global attend within windows of the 224-pixel grid (14x14 tokens in stage 3,
            7x7 in stage 4), except ``global_blocks``. Both are identical at 224x224.
        global_blocks: block indices over the whole network (from 0) that attend globally. Only
            stage-3 and stage-4 blocks may be named. None: the last stage-3 block in 'windowed'
            mode without ``window_sizes``, else none (``build_hiera`` keeps an arch's own list).
        window_sizes: per-stage window sizes (SAM2 trunks); overrides the mask-unit layout.
        pos_embed: 'abs' (one learned map of the 224 token grid, resized bicubically to the input
            grid as transformers' ``interpolate_pos_encoding`` does) or 'abs_win' (SAM2, timm's
            abswin: a background map resized to the grid plus a window map tiled over it).
        pos_embed_size: grid of the stored (background) position embedding.
        pos_embed_antialias: resize it with antialiased bicubic (timm's abswin models do; SAM2 and
            transformers do not, and the two differ even when upsampling).
        layer_scale: initial LayerScale gain of every block's two branches; None: no LayerScale.
        expand_proj: widen the residual at stage transitions with a projection (False: by
            concatenating max and mean pooling, timm's ``use_expand_proj=False``).
        pretrain_size: pretraining image size (sets the windows of 'windowed' attention).
        drop_path_rate: stochastic depth, rising linearly over the blocks.
        with_cp: activation checkpointing per block during training.
    """

    patch_stride = PATCH_STRIDE

    def __init__(self, embed_dim: int = 96, depths: Sequence[int] = (1, 2, 7, 2),
                 num_heads: Sequence[int] = (1, 2, 4, 8), mlp_ratio: float = 4.0,
                 attention: str = 'exact', global_blocks: Optional[Sequence[int]] = None,
                 window_sizes: Optional[Sequence[int]] = None, pos_embed: str = 'abs',
                 pos_embed_size: Sequence[int] = (56, 56), mask_unit_size: int = MASK_UNIT_SIZE,
                 mask_unit_attn: Sequence[bool] = (True, True, False, False), num_q_pool: int = 3,
                 pretrain_size: int = 224, drop_path_rate: float = 0.0, with_cp: bool = False,
                 in_chans: int = 3, norm_eps: float = 1e-6, pos_embed_antialias: bool = False,
                 layer_scale: Optional[float] = None, expand_proj: bool = True):
        super().__init__()
        depths, num_heads = tuple(depths), tuple(num_heads)
        _check_arch(depths=depths, num_heads=num_heads, mask_unit_attn=mask_unit_attn,
                    window_sizes=window_sizes, attention=attention, pos_embed=pos_embed,
                    drop_path_rate=drop_path_rate)
        self.embed_dim = embed_dim
        self.depths = depths
        self.num_heads = num_heads
        self.attention = attention
        self.global_blocks = _resolve_global_blocks(global_blocks, depths=depths,
                                                    attention=attention, window_sizes=window_sizes)
        self.stage_ends = [sum(depths[:i + 1]) - 1 for i in range(len(depths))]
        self.num_features = stage_widths(dict(embed_dim=embed_dim, depths=depths))
        self.with_cp = with_cp
        self.pos_embed_type = pos_embed
        self.pos_embed_antialias = pos_embed_antialias
        self.mask_unit_size = mask_unit_size
        # Inputs must tile into whole mask units (and windows of the absolute-window embedding).
        self.size_divisor = self.patch_stride * mask_unit_size

        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *pos_embed_size))
        if pos_embed == 'abs_win':
            win = window_sizes[0] if window_sizes is not None else mask_unit_size
            self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, win, win))
        else:
            self.pos_embed_window = None
        self._pos_embed_cache = None  # (key, embedding) of the last inference size

        layout = _block_layout(depths=depths, mask_unit_attn=mask_unit_attn, num_q_pool=num_q_pool,
                               window_sizes=window_sizes, global_blocks=self.global_blocks,
                               attention=attention, mask_unit=mask_unit_size,
                               pretrain_tokens=pretrain_size // self.patch_stride)
        rates = torch.linspace(0, drop_path_rate, len(layout), device='cpu').tolist()
        dims = [embed_dim] + [self.num_features[spec.stage] for spec in layout]
        self.blocks = nn.ModuleList(
            HieraBlock(dims[i], dims[i + 1], num_heads=num_heads[spec.stage],
                       q_stride=spec.q_stride, window=spec.window, drop_path_rate=rates[i],
                       mlp_ratio=mlp_ratio, norm_eps=norm_eps, layer_scale=layer_scale,
                       expand_proj=expand_proj)
            for i, spec in enumerate(layout))

    def resized_pos_embed(self, grid_hw: tuple[int, int]) -> torch.Tensor:
        """Position embedding for a token grid, NHWC (1, h, w, C)."""
        if torch.is_grad_enabled() or is_tracing():
            return self._resize_pos_embed(grid_hw)
        # Inference resizes the same embedding for every batch of a size (a bicubic resize, ~2% of
        # a forward): keep the last result, keyed by the size and the embeddings' storage and
        # version so that loading or editing the weights invalidates it.
        key = (tuple(grid_hw),) + tuple(
            (p.data_ptr(), p._version, p.dtype) for p in (self.pos_embed, self.pos_embed_window)
            if p is not None)
        if self._pos_embed_cache is None or self._pos_embed_cache[0] != key:
            self._pos_embed_cache = (key, self._resize_pos_embed(grid_hw))
        return self._pos_embed_cache[1]

    def _resize_pos_embed(self, grid_hw: tuple[int, int]) -> torch.Tensor:
        pos = self.pos_embed
        if is_tracing() or tuple(pos.shape[-2:]) != tuple(grid_hw):
            pos = F.interpolate(pos, size=grid_hw, mode='bicubic', align_corners=False,
                                antialias=self.pos_embed_antialias)
        if self.pos_embed_window is not None:
            win = self.pos_embed_window
            wh, ww = win.shape[-2:]
            if not is_tracing() and (grid_hw[0] % wh or grid_hw[1] % ww):
                raise ValueError(
                    f'token grid {tuple(grid_hw)} does not tile into the {wh}x{ww} windows of the '
                    f'position embedding: input height and width must be multiples of '
                    f'{self.patch_stride * wh}x{self.patch_stride * ww} pixels')
            pos = pos + win.tile(1, 1, grid_hw[0] // wh, grid_hw[1] // ww)
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) with H, W multiples of ``size_divisor`` -> stage maps, each (B, h, w, C)."""
        x = self.patch_embed.proj(x).permute(0, 2, 3, 1)
        x = (x + self.resized_pos_embed(x.shape[1:3])).contiguous()
        outs = []
        for i, block in enumerate(self.blocks):
            if self.with_cp and self.training and x.requires_grad:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
            if i in self.stage_ends:
                outs.append(x)
        return outs

    def init_weights(self, std: float = 0.02) -> None:
        """Random init as the reference implementations do (for training from scratch)."""
        nn.init.trunc_normal_(self.pos_embed, std=std)
        if self.pos_embed_window is not None:
            nn.init.trunc_normal_(self.pos_embed_window, std=std)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, LayerScale):
                nn.init.constant_(m.gamma, m.init_value)


def build_hiera(arch='tiny', **kwargs) -> Hiera:
    """Hiera from an arch name (see ``hiera_mm.archs``) or a dict of ``Hiera`` arguments."""
    if isinstance(arch, str):
        settings = dict(check_arch(arch))
    elif isinstance(arch, dict):
        missing = {'embed_dim', 'depths', 'num_heads'} - set(arch)
        if missing:
            raise ValueError(f'a custom Hiera arch needs {sorted(missing)} (got {sorted(arch)})')
        settings = dict(arch)
    else:
        raise TypeError(f'arch must be a name or a dict, got {type(arch).__name__}')
    if kwargs.get('global_blocks') is None:
        # None leaves the arch's own global blocks (SAM2's) or else Hiera's default in force.
        kwargs.pop('global_blocks', None)
    settings.update(kwargs)
    return Hiera(**settings)
