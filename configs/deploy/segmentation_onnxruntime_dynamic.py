# mmdeploy 1.x: an MMSegmentation segmentor to onnxruntime, dynamic batch, height and width;
# output: the label map (N x 1 x H x W). mmdeploy's
# configs/mmseg/segmentation_onnxruntime_dynamic.py (not in its wheel) in one file, at opset 17
# (Hiera's attention exports from 14).

# hiera_mm_tools' rewrite of adaptive average pooling (UperNet's PSP module): mmdeploy's own fixes
# the pooling bins at the export size, wrong at every other size ("stride should not be zero").
custom_imports = dict(imports=['hiera_mm_tools.export.mmdeploy_rewrites'],
                      allow_failed_imports=False)
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=17,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['output'],
    input_shape=None,
    optimize=True,
    dynamic_axes=dict(
        input={0: 'batch', 2: 'height', 3: 'width'},
        output={0: 'batch', 2: 'height', 3: 'width'}))
codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=True)
backend_config = dict(type='onnxruntime')
