"""Export of whole models, beside the trunk's own ONNX support (``hiera_mm.models.onnx``):

* ``openmmlab``: MMSegmentation segmentors and MMDetection backbones + necks to ONNX with
  ``torch.onnx`` (``tools/deployment/pytorch2onnx.py``), checked with onnxruntime;
* ``mmdeploy_rewrites``: the rewrite the deploy configs in ``configs/deploy`` import for mmdeploy;
* ``runtime``: the onnxruntime CPU session every tool opens an exported graph with;
* ``detectron2``: a Detectron2 R-CNN through ``detectron2.export.TracingAdapter`` to ONNX or
  TorchScript, and its check against PyTorch (``tools/detectron2/export_model.py``).

Each module imports its framework only when used.
"""
