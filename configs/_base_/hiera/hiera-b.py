# Hiera-B (24 blocks, the stage widths of Hiera-T). Stochastic depth 0.2: our choice (grows with
# model size), not tuned.
# IN1K-finetuned weights, overlaying the backbone of a Hiera-T config:
hiera_b_pretrained = 'hf://facebook/hiera-base-224-hf'
hiera_b = dict(
    arch='base', drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint=hiera_b_pretrained))
# MAE weights, the whole backbone of the LSJ (ViTDet / Hiera paper) config:
hiera_b_mae_pretrained = 'hf://facebook/hiera-base-224-mae-hf'
hiera_b_mae = dict(hiera_b, _delete_=True, type='HieraBackbone',
                   init_cfg=dict(type='Pretrained', checkpoint=hiera_b_mae_pretrained))
