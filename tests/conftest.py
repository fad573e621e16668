"""Shared fixtures: small Hiera checkpoints made here (no hub access), tiny detectors."""
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
# No test may reach a model hub; loading code must go through the real cache logic.
os.environ['HF_HUB_OFFLINE'] = '1'
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def hf_config(embed_dim=96, depths=(1, 2, 7, 2), num_heads=(1, 2, 4, 8), image_size=(224, 224),
              **extra):
    from transformers import HieraConfig
    return HieraConfig(embed_dim=embed_dim, depths=list(depths), num_heads=list(num_heads),
                       image_size=list(image_size), **extra)


def randomize_(model, seed=0, std=0.05):
    """Non-trivial random weights (norm gains and biases included) so parity cannot pass by luck."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            base = 1.0 if name.endswith('weight') and p.ndim == 1 else 0.0
            p.copy_(base + std * torch.randn(p.shape, generator=gen))
    return model


@pytest.fixture(scope='session')
def make_hf_checkpoint(tmp_path_factory):
    """Factory: save_pretrained folder of a random HF Hiera model; returns (folder, model)."""
    cache = {}

    def make(model_cls='HieraModel', seed=0, **cfg):
        key = (model_cls, seed, tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v)
                                             for k, v in cfg.items())))
        if key not in cache:
            import transformers
            model = getattr(transformers, model_cls)(hf_config(**cfg))
            randomize_(model, seed).eval()
            folder = tmp_path_factory.mktemp(model_cls)
            model.save_pretrained(folder)
            cache[key] = (str(folder), model)
        return cache[key]

    return make
