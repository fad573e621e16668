# Hiera-S (16 blocks, the stage widths of Hiera-T), IN1K-finetuned weights; overlays the backbone
# of a Hiera-T config. Stochastic depth 0.15: our choice (grows with model size), not tuned.
hiera_s_pretrained = 'hf://facebook/hiera-small-224-hf'
hiera_s = dict(
    arch='small', drop_path_rate=0.15,
    init_cfg=dict(type='Pretrained', checkpoint=hiera_s_pretrained))
