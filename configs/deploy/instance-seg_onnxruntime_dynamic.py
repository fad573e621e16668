# mmdeploy 1.x: an MMDetection detector with masks to onnxruntime, dynamic batch, height, width.
# mmdeploy's configs/mmdet/instance-seg/instance-seg_onnxruntime_dynamic.py (not in its wheel) in
# one file, at opset 17 (Hiera's attention exports from 14). Outputs: dets (N x K x 5), labels
# (N x K), masks (N x K x 28 x 28 before pasting). Set up: tools/deployment/setup_mmdeploy_env.sh.
custom_imports = dict(imports=['hiera_mm_tools.export.mmdeploy_rewrites'],
                      allow_failed_imports=False)
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=17,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['dets', 'labels', 'masks'],
    input_shape=None,
    optimize=True,
    dynamic_axes=dict(
        input={0: 'batch', 2: 'height', 3: 'width'},
        dets={0: 'batch', 1: 'num_dets'},
        labels={0: 'batch', 1: 'num_dets'},
        masks={0: 'batch', 1: 'num_dets', 2: 'height', 3: 'width'}))
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    post_processing=dict(
        score_threshold=0.05,
        confidence_threshold=0.005,
        iou_threshold=0.5,
        max_output_boxes_per_class=200,
        pre_top_k=5000,
        keep_top_k=100,
        background_label_id=-1,
        export_postprocess_mask=False))
backend_config = dict(type='onnxruntime')
