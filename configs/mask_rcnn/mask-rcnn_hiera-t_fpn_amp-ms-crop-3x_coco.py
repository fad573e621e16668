_base_ = './mask-rcnn_hiera-t_fpn_ms-crop-3x_coco.py'
# Automatic mixed precision (fp16 autocast + dynamic loss scaling) with AmpOptimWrapper.
optim_wrapper = dict(type='AmpOptimWrapper')
