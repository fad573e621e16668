"""The Hiera model in plain torch (no framework imports)."""
from .hiera import ATTENTION_MODES, Hiera, build_hiera
from .stages import HieraStages, LoadReport, hiera_layer_id, lr_decay_scale, strip_ddp_prefix

__all__ = ['ATTENTION_MODES', 'Hiera', 'HieraStages', 'LoadReport', 'build_hiera',
           'hiera_layer_id', 'lr_decay_scale', 'strip_ddp_prefix']
