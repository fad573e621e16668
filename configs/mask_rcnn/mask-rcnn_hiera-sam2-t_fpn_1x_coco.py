# Hiera-T trunk of SAM 2.1 (windowed attention with a few global blocks, window position
# embedding), started from the SAM 2.1 checkpoint; the Hiera-T recipe otherwise.
# The checkpoint is the released SAM 2.1 file; only its image_encoder.trunk.* is used. Get it with
#   huggingface-cli download facebook/sam2.1-hiera-tiny sam2.1_hiera_tiny.pt --local-dir checkpoints
# or with checkpoints/download_ckpts.sh of github.com/facebookresearch/sam2.
_base_ = ['./mask-rcnn_hiera-t_fpn_1x_coco.py', '../_base_/hiera/hiera-sam2-t.py']
pretrained = {{_base_.hiera_sam2_t_pretrained}}
model = dict(backbone={{_base_.hiera_sam2_t}})
