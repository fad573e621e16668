#!/usr/bin/env python
"""Convert a Hiera checkpoint in any supported layout to hiera_mm's backbone layout.

    python tools/model_converters/convert_weights.py SRC DST [--arch tiny]

SRC: an ``hf://org/name`` hub id, a save_pretrained folder, or a FAIR / timm / transformers /
SAM2 / hiera_mm checkpoint file. DST: ``.safetensors`` (preferred) or ``.pth`` holding only
tensors named as ``HieraBackbone``'s (``trunk.*``, ``out_norms.*``), ready for
``init_cfg=dict(type='Pretrained', checkpoint=DST)``. Prints what was mapped and dropped.
"""
import argparse
import os
from collections import Counter

from hiera_mm.checkpoints import convert_state_dict, guess_arch, read_state_dict


def convert(src: str, dst: str, arch: str = None) -> dict:
    conv = convert_state_dict(read_state_dict(src))
    looks_like = guess_arch(conv['trunk'])
    if arch is not None and arch != looks_like:
        raise SystemExit(f"error: '{src}' looks like arch '{looks_like}', not '{arch}'")
    out = {f'trunk.{k}': v.contiguous() for k, v in conv['trunk'].items()}
    out.update({f'out_norms.{k}': v.contiguous() for k, v in conv['out_norms'].items()})
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    if dst.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file(out, dst, metadata={'format': 'pt', 'hiera_mm_arch': str(looks_like),
                                      'source_layout': conv['layout']})
    else:
        import torch
        torch.save(out, dst)
    dropped = Counter(k.split('.')[0] for k in conv['dropped'])
    print(f"{src}: layout '{conv['layout']}', looks like arch '{looks_like}'")
    print(f'  mapped  {len(conv["trunk"])} trunk tensors'
          + (f' and {len(conv["out_norms"])} out-norm tensors' if conv['out_norms'] else ''))
    print(f'  dropped {len(conv["dropped"])} tensors'
          + (': ' + ', '.join(f'{g} ({n})' for g, n in sorted(dropped.items())) if dropped else ''))
    print(f'  wrote   {dst}')
    return dict(layout=conv['layout'], arch=looks_like, num_mapped=len(out),
                num_dropped=len(conv['dropped']))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='hf://org/name, a save_pretrained folder or a checkpoint file')
    parser.add_argument('dst', help='output .safetensors (preferred) or .pth')
    parser.add_argument('--arch', help='fail unless the checkpoint is this arch')
    args = parser.parse_args(argv)
    convert(args.src, args.dst, args.arch)


if __name__ == '__main__':
    main()
