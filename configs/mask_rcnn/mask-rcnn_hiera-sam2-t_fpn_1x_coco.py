# Hiera-T trunk of SAM 2.1 (windowed attention, a few global blocks, window position embedding)
# from the released SAM 2.1 file (only image_encoder.trunk.* is used); the Hiera-T recipe
# otherwise. Get it with `huggingface-cli download facebook/sam2.1-hiera-tiny sam2.1_hiera_tiny.pt
# --local-dir checkpoints` (or SAM2's checkpoints/download_ckpts.sh).
_base_ = ['./mask-rcnn_hiera-t_fpn_1x_coco.py', '../_base_/hiera/hiera-sam2-t.py']
pretrained = {{_base_.hiera_sam2_t_pretrained}}
model = dict(backbone={{_base_.hiera_sam2_t}})
