# mmdeploy 1.x: an MMDetection detector with masks to onnxruntime, dynamic batch, height, width.
# mmdeploy's configs/mmdet/instance-seg/instance-seg_onnxruntime_dynamic.py (not in its wheel).
# Outputs: dets (N x K x 5), labels (N x K), masks (N x K x 28 x 28 before pasting).
# Set up: tools/deployment/setup_mmdeploy_env.sh.
_base_ = ['./_base_/onnxruntime_dynamic.py']
onnx_config = dict(
    output_names=['dets', 'labels', 'masks'],
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
