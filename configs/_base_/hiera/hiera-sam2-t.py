# Hiera-T trunk of SAM 2.1 (windowed attention with a few global blocks, window position
# embedding) from the released SAM 2.1 checkpoint; overlays the backbone of a Hiera-T config.
hiera_sam2_t_pretrained = 'checkpoints/sam2.1_hiera_tiny.pt'
hiera_sam2_t = dict(
    arch='sam2_tiny', init_cfg=dict(type='Pretrained', checkpoint=hiera_sam2_t_pretrained))
