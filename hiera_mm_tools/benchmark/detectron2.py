"""The Detectron2 plug-in of the benchmark: the whole Mask R-CNN, eager and under onnxruntime.

Loading it registers two rows that run only when named (``--contenders``):

* ``d2-mask-rcnn-eager``: the Mask R-CNN of ``configs/detectron2/mask_rcnn_hiera_t_3x.py``
  (``--arch`` sets its Hiera; random weights), ``model.inference(..., do_postprocess=False)``:
  preprocessing, backbone, FPN, RPN, box head with NMS, mask head;
* ``d2-mask-rcnn-onnxruntime``: the same model (the same seed, so the same weights) exported as
  ``tools/detectron2/export_model.py`` exports it (``TracingAdapter``, ONNX opset 17, dynamic
  height and width, recorded at ``--size``) and run by onnxruntime on the CPU.

Both take one image (``--batch 1``), forward only. The benchmark's input (N(0, 1) noise) is
mapped to the 0-255 scale the detector expects. The box score threshold is 0, so that every
image sends the detector's full 100 detections through the mask head, eager and exported alike
(with random weights the default threshold of 0.05 would leave none).
"""
import os.path as osp

from .contenders import Contender, Implementation, onnxruntime_why_not, register
from . import environment

CONFIG = 'detectron2/mask_rcnn_hiera_t_3x.py'  # shipped with hiera_mm (hiera_mm.configs)
OPTIONS = ('model.roi_heads.box_predictor.test_score_thresh=0.0',)


def why_no_detectron2():
    why = environment.import_error('detectron2.modeling')
    return None if why is None else f'detectron2 is not importable ({why})'


def _eager_why_not(args):
    if args.mode != 'fwd' or args.batch != 1:
        return 'the d2 rows time inference of one image (--mode fwd --batch 1)'
    return why_no_detectron2()


def _onnx_why_not(args):
    return _eager_why_not(args) or onnxruntime_why_not(args)


def as_image(x):
    """The benchmark's (1, 3, H, W) N(0, 1) input as a (3, H, W) image on the 0-255 scale."""
    return (x[0] * 64 + 128).clamp(0, 255)


def build_mask_rcnn(args):
    from detectron2.config import instantiate

    from hiera_mm_tools import d2_runner
    cfg = d2_runner.load_config(CONFIG, [*OPTIONS, f'model.backbone.bottom_up.arch={args.arch}'])
    return instantiate(cfg.model).eval()


def _fields(instances) -> list:
    return [instances.pred_boxes.tensor, instances.pred_classes, instances.pred_masks,
            instances.scores]


def build_eager(name, args, with_cp=False):
    from hiera_mm_tools.export.detectron2 import raw_inference
    model = build_mask_rcnn(args)

    def instances(x):
        return raw_inference(model, [{'image': as_image(x)}])[0]['instances']
    contender = Contender(name, model, lambda x: _fields(instances(x)),
                          f'detectron2 GeneralizedRCNN ({CONFIG}, arch {args.arch!r}), eager, '
                          'score threshold 0')
    contender.instances = instances
    return contender


def build_onnxruntime(name, args, with_cp=False):
    import tempfile

    import onnxruntime as ort
    import torch

    from hiera_mm_tools.export.detectron2 import (ExportedModel, export_onnx, make_adapter,
                                                  output_names)
    model = build_mask_rcnn(args)
    gen = torch.Generator().manual_seed(0)
    example = as_image(torch.randn(1, 3, *args.size, generator=gen))
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        adapter = make_adapter(model, example)
        names = output_names(adapter, len(adapter(example)))  # sets outputs_schema
        path = osp.join(folder, 'model.onnx')
        opset = export_onnx(adapter, example, path, None, names)
        exported = ExportedModel(path, 'onnx', adapter.outputs_schema)  # the session holds it

    def instances(x):
        return exported.raw(as_image(x))
    contender = Contender(name, model, lambda x: _fields(instances(x)),
                          f'onnxruntime {ort.__version__} CPU, {CONFIG} (arch {args.arch!r}) '
                          f'through TracingAdapter, opset {opset}, dynamic size, recorded at '
                          f'{args.size[0]}x{args.size[1]}, score threshold 0')
    contender.instances = instances
    return contender


IMPORTS = ('detectron2.modeling', 'hiera_mm.detectron2')
register('d2-mask-rcnn-eager', Implementation(build_eager, _eager_why_not, pads=True,
                                              imports=IMPORTS, default=False))
register('d2-mask-rcnn-onnxruntime', Implementation(build_onnxruntime, _onnx_why_not, pads=True,
                                                    imports=IMPORTS + ('onnxruntime',),
                                                    default=False))
if 'detectron2' not in environment.REPORTED_DISTS:
    environment.REPORTED_DISTS.append('detectron2')
