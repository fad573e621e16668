"""Who reads a detector's backbone features (the first neck, or a neckless head): MMDetection's
neck tables."""
from __future__ import annotations

from ..analyse import Consumer, short_type

# Necks taking a list of in_channels, one per backbone output they are given, that read levels
# start_level..end_level of them (default start_level) ...
LEVEL_NECKS = {'FPN': 0, 'PAFPN': 0, 'FPN_CARAFE': 0, 'FPN_DropBlock': 0, 'NASFPN': 0}
# ... or all of them (HRFPN resamples input i by 2**i: the probe keeps strides, so Hiera's
# stages at those strides keep that ratio) ...
ALL_LEVEL_NECKS = {'ChannelMapper', 'HRFPN'}
# ... and necks with one int in_channels that read the last backbone output only.
LAST_LEVEL_NECKS = {'DilatedEncoder', 'CTResNetNeck'}
# Heads without a neck that take a list of in_channels (all backbone outputs).
NECKLESS_HEADS = ('panoptic_head',)
NECK_REASONS = {
    'YOLOXPAFPN': "it is built for CSPDarknet's stages and widths (with YOLOX's width "
                  'multipliers and recipe)',
    'CSPNeXtPAFPN': "it is built for CSPNeXt's stages and widths (with RTMDet's width "
                    'multipliers and recipe)',
    'YOLOV3Neck': "it is built for Darknet-53's stages and widths",
    'SSDNeck': "it extends SSDVGG's feature maps with layers of its own",
    'RFP': 'recursive feature pyramids feed features back into a DetectoRS backbone',
}


def _level_neck(first: dict, ntype: str, is_list: bool, config: str) -> Consumer:
    in_channels = first.get('in_channels')
    if not isinstance(in_channels, (list, tuple)) or not in_channels:
        raise ValueError(f'neck {ntype} of {config}: in_channels {in_channels!r} is not '
                         'a list of channels; cannot adapt it, edit the config by hand')
    mode = 'levels' if ntype in LEVEL_NECKS else 'all'
    return Consumer('neck', ntype, list(in_channels), mode, is_list,
                    start_level=first.get('start_level', LEVEL_NECKS.get(ntype, 0)),
                    end_level=first.get('end_level', -1))


def _neck_consumer(neck, config: str) -> Consumer:
    is_list = isinstance(neck, (list, tuple))
    first = dict(neck[0] if is_list else neck)
    ntype = short_type(first.get('type'))
    if ntype in LEVEL_NECKS or ntype in ALL_LEVEL_NECKS:
        return _level_neck(first, ntype, is_list, config)
    if ntype in LAST_LEVEL_NECKS:
        if not isinstance(first.get('in_channels'), int):
            raise ValueError(f'neck {ntype} of {config}: expected one int in_channels, got '
                             f"{first.get('in_channels')!r}; edit the config by hand")
        return Consumer('neck', ntype, [first['in_channels']], 'last', is_list)
    known = sorted(LEVEL_NECKS) + sorted(ALL_LEVEL_NECKS) + sorted(LAST_LEVEL_NECKS)
    why = NECK_REASONS.get(ntype, 'its inputs are not known to map onto backbone stages')
    raise ValueError(
        f'neck {ntype} of {config}: cannot adapt it to Hiera automatically ({why}); '
        f'swap_backbone adapts the inputs of {", ".join(known)} and panoptic_head. '
        'Edit the config by hand.')


def find_consumer(model: dict, config: str) -> Consumer:
    """Who reads the backbone's features: the first neck, or a neckless head (Mask2Former /
    MaskFormer's panoptic_head); refused where the inputs cannot be mapped onto Hiera's stages
    safely (YOLOX / CSPNeXt / SSD / RFP necks, heads reading the backbone directly)."""
    if model.get('neck') is not None:
        return _neck_consumer(model['neck'], config)
    for head in NECKLESS_HEADS:
        head_cfg = model.get(head)
        if isinstance(head_cfg, dict) and isinstance(head_cfg.get('in_channels'), (list, tuple)):
            return Consumer(head, short_type(head_cfg.get('type')),
                            list(head_cfg['in_channels']), 'all')
    heads = [k for k in model if k.endswith('_head') and isinstance(model[k], dict)]
    raise ValueError(
        f'{config} has no neck (nor a panoptic_head with an in_channels list): its heads '
        f"({', '.join(heads) or 'none'}) read the backbone's features directly (e.g. a C4 RoI "
        'head with a ResNet stage of its own); cannot adapt them to Hiera automatically, edit '
        'the config by hand.')
