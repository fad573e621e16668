# UperNet, Hiera-T on the synthetic toy shapes in mmseg's layout (tools/dev/make_toy_seg.py),
# sized to learn on 2 CPU cores in minutes: 128 px images, 128-channel heads, a short schedule.
# The ADE20K config otherwise (--tta works too), and a template for one's own dataset in this
# layout: set data_root, metainfo classes and num_classes.
_base_ = '../upernet/upernet_hiera-t_8xb2-160k_ade20k-512x512.py'

data_root = 'data/toy_seg/'
classes = ('background', 'circle', 'triangle', 'rectangle')
metainfo = dict(classes=classes,
                palette=[(0, 0, 0), (220, 20, 60), (0, 128, 255), (0, 200, 0)])
num_classes = len(classes)
crop_size = (128, 128)
max_iters = 100
batch_size = 4

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(drop_path_rate=0.0),
    # narrower heads (128 / 64 channels instead of 512 / 256) keep a CPU step short
    decode_head=dict(channels=128, num_classes=num_classes),
    auxiliary_head=dict(channels=64, num_classes=num_classes))

# Label 0 is a class here (ADE20K's pipelines drop it with reduce_zero_label=True).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
               img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False)
train_dataloader = dict(
    batch_size=batch_size, num_workers=2, persistent_workers=True,
    dataset=dict(dataset, data_prefix=dict(img_path='img_dir/train',
                                           seg_map_path='ann_dir/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=True,
    dataset=dict(dataset, data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

# From random init (no cached IN1K weights) a higher lr than the recipe's 6e-5 learns faster.
optim_wrapper = dict(optimizer=dict(lr=6e-4), clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=20, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=max_iters))
