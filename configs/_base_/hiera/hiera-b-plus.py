# Hiera-B+ (24 blocks, wider: stage widths 112, 224, 448, 896). Stochastic depth 0.2: our choice
# (grows with model size), not tuned. Overlays the backbone of a Hiera-T or Hiera-B config.
hiera_b_plus_widths = [112, 224, 448, 896]
hiera_b_plus_pretrained = 'hf://facebook/hiera-base-plus-224-hf'  # IN1K-finetuned
hiera_b_plus = dict(
    arch='base_plus', drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint=hiera_b_plus_pretrained))
hiera_b_plus_mae_pretrained = 'hf://facebook/hiera-base-plus-224-mae-hf'  # MAE, for LSJ
hiera_b_plus_mae = dict(
    hiera_b_plus, init_cfg=dict(type='Pretrained', checkpoint=hiera_b_plus_mae_pretrained))
