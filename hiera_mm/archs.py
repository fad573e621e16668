"""Facts of every Hiera arch, in one place: the model's settings, stage widths, published
checkpoints, default stochastic depth, input padding and normalisation.

A leaf module (imports nothing of hiera_mm, not even torch): the model, the checkpoint reader,
every integration, tool and config generator reads these facts from here.
"""
from __future__ import annotations

# Hiera image models of the paper (Ryali et al., ICML 2023); weights on the HF hub below.
ARCH_SETTINGS = {
    'tiny': dict(embed_dim=96, depths=(1, 2, 7, 2), num_heads=(1, 2, 4, 8)),
    'small': dict(embed_dim=96, depths=(1, 2, 11, 2), num_heads=(1, 2, 4, 8)),
    'base': dict(embed_dim=96, depths=(2, 3, 16, 3), num_heads=(1, 2, 4, 8)),
    'base_plus': dict(embed_dim=112, depths=(2, 3, 16, 3), num_heads=(2, 4, 8, 16)),
    'large': dict(embed_dim=144, depths=(2, 6, 36, 4), num_heads=(2, 4, 8, 16)),
    'huge': dict(embed_dim=256, depths=(2, 6, 36, 4), num_heads=(4, 8, 16, 32)),
    # SAM2 / SAM2.1 image-encoder trunks: windowed attention per stage, a few global blocks and
    # an absolute-window position embedding (settings from SAM2's released model configs).
    'sam2_tiny': dict(embed_dim=96, depths=(1, 2, 7, 2), num_heads=(1, 2, 4, 8),
                      window_sizes=(8, 4, 14, 7), global_blocks=(5, 7, 9),
                      pos_embed='abs_win', pos_embed_size=(7, 7)),
    'sam2_small': dict(embed_dim=96, depths=(1, 2, 11, 2), num_heads=(1, 2, 4, 8),
                       window_sizes=(8, 4, 14, 7), global_blocks=(7, 10, 13),
                       pos_embed='abs_win', pos_embed_size=(7, 7)),
    'sam2_base_plus': dict(embed_dim=112, depths=(2, 3, 16, 3), num_heads=(2, 4, 8, 16),
                           window_sizes=(8, 4, 14, 7), global_blocks=(12, 16, 20),
                           pos_embed='abs_win', pos_embed_size=(14, 14)),
    'sam2_large': dict(embed_dim=144, depths=(2, 6, 36, 4), num_heads=(2, 4, 8, 16),
                       window_sizes=(8, 4, 16, 8), global_blocks=(23, 33, 43),
                       pos_embed='abs_win', pos_embed_size=(7, 7)),
}
# The SAM2.1 releases share the SAM2 trunks.
for _size in ('tiny', 'small', 'base_plus', 'large'):
    ARCH_SETTINGS[f'sam2.1_{_size}'] = ARCH_SETTINGS[f'sam2_{_size}']
# timm's hiera_{small,base}_abswin_256: the paper's Hiera at 256 pixels with an absolute-window
# position embedding (resized with antialiasing, unlike SAM2's) and LayerScale; the small one
# widens the residual at stage transitions by pooling instead of a projection (timm's
# use_expand_proj=False).
_ABSWIN = dict(embed_dim=96, num_heads=(1, 2, 4, 8), pos_embed='abs_win', pos_embed_antialias=True,
               layer_scale=1e-5, pretrain_size=256)
ARCH_SETTINGS['abswin_small'] = dict(_ABSWIN, depths=(1, 2, 11, 2), pos_embed_size=(16, 16),
                                     expand_proj=False)
ARCH_SETTINGS['abswin_base'] = dict(_ABSWIN, depths=(2, 3, 16, 3), pos_embed_size=(14, 14))

# The paper's models on the HF hub (transformers' HieraModel layout). SAM2 and abswin trunks have
# no hub id here: their files come from the user.
HUB_IDS = {size: f"facebook/hiera-{size.replace('_', '-')}-224-hf"
           for size in ('tiny', 'small', 'base', 'base_plus', 'large', 'huge')}

# Stochastic depth of this project's detection configs per model size (SAM2 and abswin trunks
# take their size's rate).
DEFAULT_DROP_PATH = {'tiny': 0.1, 'small': 0.15, 'base': 0.2, 'base_plus': 0.2, 'large': 0.4,
                     'huge': 0.5}

# Pixels per token of the patch embedding, and tokens per side of a mask unit (stage 1).
PATCH_STRIDE = 4
MASK_UNIT_SIZE = 8
# Hiera pads its inputs to whole mask units: multiples of this many pixels.
SIZE_DIVISOR = PATCH_STRIDE * MASK_UNIT_SIZE  # 32
# Strides of the four stage maps (each stage halves the map).
STAGE_STRIDES = tuple(PATCH_STRIDE * 2 ** i for i in range(4))  # (4, 8, 16, 32)

# The input normalisation every released Hiera / SAM2 checkpoint was trained with: RGB images on
# the 0-255 scale, ImageNet mean and std.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def check_arch(arch: str) -> dict:
    """The settings of ``arch``; an unknown name raises with the list of known ones."""
    if arch not in ARCH_SETTINGS:
        raise ValueError(f"unknown Hiera arch '{arch}'; choose one of {sorted(ARCH_SETTINGS)} "
                         'or pass a dict with embed_dim, depths and num_heads')
    return ARCH_SETTINGS[arch]


def model_size(arch: str) -> str:
    """'sam2.1_base_plus' -> 'base_plus', 'abswin_small' -> 'small', 'tiny' -> 'tiny'."""
    check_arch(arch)
    return arch.split('_', 1)[1] if arch.startswith(('sam2', 'abswin')) else arch


def stage_widths(arch) -> list:
    """Channels of the four stage maps (``embed_dim * 2**i``) of an arch name or settings dict."""
    settings = check_arch(arch) if isinstance(arch, str) else arch
    return [int(settings['embed_dim'] * 2 ** i) for i in range(len(settings['depths']))]


def default_drop_path(arch: str) -> float:
    return DEFAULT_DROP_PATH[model_size(arch)]
