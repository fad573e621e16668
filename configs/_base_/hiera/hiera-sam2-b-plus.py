# Hiera-B+ trunk of SAM 2.1 (stage widths 112, 224, 448, 896) from the released SAM 2.1
# checkpoint; overlays the backbone of a Hiera-T config. Stochastic depth 0.2 (not tuned).
hiera_sam2_b_plus_widths = [112, 224, 448, 896]
hiera_sam2_b_plus_pretrained = 'checkpoints/sam2.1_hiera_base_plus.pt'
hiera_sam2_b_plus = dict(
    arch='sam2_base_plus', drop_path_rate=0.2,
    init_cfg=dict(type='Pretrained', checkpoint=hiera_sam2_b_plus_pretrained))
