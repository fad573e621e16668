# Hiera-L (48 blocks, stage widths 144, 288, 576, 1152), MAE weights; overlays the backbone of
# the Hiera-B LSJ config. Stochastic depth 0.4 (see mask-rcnn_hiera-l_fpn_lsj-100e_coco.py).
hiera_l_widths = [144, 288, 576, 1152]
hiera_l_mae_pretrained = 'hf://facebook/hiera-large-224-mae-hf'
hiera_l_mae = dict(
    arch='large', drop_path_rate=0.4,
    init_cfg=dict(type='Pretrained', checkpoint=hiera_l_mae_pretrained))
