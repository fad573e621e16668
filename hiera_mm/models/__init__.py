"""The Hiera model in plain torch (no framework imports)."""
from .hiera import ARCH_SETTINGS, ATTENTION_MODES, Hiera, build_hiera

__all__ = ['ARCH_SETTINGS', 'ATTENTION_MODES', 'Hiera', 'build_hiera']
