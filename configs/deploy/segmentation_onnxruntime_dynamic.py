# mmdeploy 1.x: an MMSegmentation segmentor to onnxruntime, dynamic batch, height and width;
# output: the label map (N x 1 x H x W). mmdeploy's
# configs/mmseg/segmentation_onnxruntime_dynamic.py (not in its wheel).
_base_ = ['./_base_/onnxruntime_dynamic.py']
onnx_config = dict(
    output_names=['output'],
    dynamic_axes=dict(
        input={0: 'batch', 2: 'height', 3: 'width'},
        output={0: 'batch', 2: 'height', 3: 'width'}))
codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=True)
