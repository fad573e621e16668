# What both deploy configs share (as mmdeploy's own _base_/onnx_config.py and backends/): ONNX at
# opset 17 (Hiera's attention exports from 14) for onnxruntime, dynamic batch, height and width,
# and hiera_mm_tools' rewrite of adaptive average pooling (UperNet's PSP module: mmdeploy's own
# fixes the pooling bins at the export size, wrong at every other size).
custom_imports = dict(imports=['hiera_mm_tools.export.mmdeploy_rewrites'],
                      allow_failed_imports=False)
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=17,
    save_file='end2end.onnx',
    input_names=['input'],
    input_shape=None,
    optimize=True)
backend_config = dict(type='onnxruntime')
