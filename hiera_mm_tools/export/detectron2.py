"""A Detectron2 R-CNN (Mask R-CNN: boxes, classes, scores, masks) traced through
``detectron2.export.TracingAdapter`` to ONNX or TorchScript, the exported file behind Detectron2's
model interface, and the check of an export against PyTorch: the code path of
``tools/detectron2/export_model.py`` (whose docstring describes the graph's inputs and outputs)
and of the benchmark's ``d2-mask-rcnn-onnxruntime`` row.

The ONNX export uses the TorchScript-based exporter (``dynamo=False``) with dynamic height and
width, at opset 17 by default (18 for abswin trunks): the backbone's attention needs opset 14
(``scaled_dot_product_attention``), Detectron2's aligned RoIAlign (``ROIAlignV2``) opset 16.
"""
from __future__ import annotations

import logging
import math
from typing import Optional

import numpy as np
import torch
from detectron2.export import TracingAdapter
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Instances, ROIMasks

from hiera_mm.models import onnx as hiera_onnx

from .runtime import onnxruntime_session

logger = logging.getLogger('detectron2')

FORMATS = {'onnx': 'model.onnx', 'torchscript': 'model.ts'}
MIN_OPSET_ALIGNED_ROI = 16  # RoiAlign with coordinate_transformation_mode='half_pixel'


def choose_model_opset(model, opset: Optional[int] = None) -> int:
    """The opset to export ``model`` at: ``opset`` where it exports the model rightly, by
    default ``hiera_mm.models.onnx.choose_opset`` (17, or 18 for abswin trunks). Refused
    (ValueError, with the opset to use): an opset below the Hiera trunk's own minimum
    (``hiera_mm.models.onnx.check_opset``), and one without aligned RoIAlign: ONNX's RoiAlign
    has the half-pixel alignment of Detectron2's ``ROIAlignV2`` (``aligned=True``, the R-CNN
    default) only from opset 16; torchvision exports it at opsets 11-15 with a warning and boxes
    that differ (measured on the toy model at opset 14: up to 42 px, mask IoU down to 0)."""
    from detectron2.layers import ROIAlign

    default = hiera_onnx.choose_opset(model)
    try:
        opset = hiera_onnx.choose_opset(model, opset)  # the trunk's own needs (abswin: 18)
    except ValueError as err:
        raise ValueError(f'--{err}. Use --opset {default} (the default)')
    if opset < MIN_OPSET_ALIGNED_ROI and any(
            isinstance(m, ROIAlign) and m.aligned for m in model.modules()):
        raise ValueError(
            f'--opset {opset}: the model pools with ROIAlignV2 (RoIAlign, aligned=True), which '
            f'ONNX has from opset {MIN_OPSET_ALIGNED_ROI} (coordinate_transformation_mode '
            f'half_pixel); at opset {opset} the boxes and masks come out wrong. Use --opset '
            f'{default} (the default)')
    return opset


# ----------------------------------------------------------------------------------------------
# tracing and export
def raw_inference(model, inputs):
    """Detectron2's raw R-CNN outputs (boxes at the input size, per-box mask probabilities):
    what is exported; ``detector_postprocess`` is left to the caller."""
    instances = model.inference(inputs, do_postprocess=False)[0]
    return [{'instances': instances}]


def make_adapter(model, image: torch.Tensor) -> TracingAdapter:
    """TracingAdapter taking one (3, H, W) float image; its ``outputs_schema`` is set by running
    it once (``adapter(image)``)."""
    # Weights without requires_grad: the traced graph holds in-place ops (ImageList's padding,
    # the inference-time GELU) that autograd refuses on views of leaves that require grad, so a
    # TorchScript module traced from trainable weights fails when called outside torch.no_grad().
    model.requires_grad_(False)
    # In eval mode like the model: the ONNX exporter restores the adapter's mode afterwards,
    # recursively, and a new module is in training mode.
    return TracingAdapter(model.eval(), [{'image': image}], raw_inference).eval()


def output_names(adapter: TracingAdapter, num_outputs: int) -> list[str]:
    """Names of the flattened outputs: the Instances' field names (sorted, as TracingAdapter
    flattens them) and ``image_size``; ``output_i`` for another structure."""
    try:
        schema = adapter.outputs_schema.schemas[0].schemas[0]  # [ {'instances': Instances} ]
        names = list(schema.keys) + ['image_size']
        if len(names) == num_outputs and all(s == 1 for s in schema.sizes):
            return names
    except (AttributeError, IndexError):
        pass
    return [f'output_{i}' for i in range(num_outputs)]


def export_onnx(adapter, image, path: str, opset: Optional[int], names) -> int:
    """``adapter`` to ONNX at ``path``, dynamic in height and width; returns the opset."""
    axes = {'image': {1: 'height', 2: 'width'}}
    axes.update({n: {0: 'detections'} for n in names if n != 'image_size'})
    return hiera_onnx.export(adapter, (image,), path, choose_model_opset(adapter, opset),
                             input_names=['image'], output_names=list(names), dynamic_axes=axes,
                             do_constant_folding=True)


def export_torchscript(adapter, image, path: str) -> None:
    # check_trace would rerun the model at the same size only; the check below runs two sizes.
    traced = torch.jit.trace(adapter, (image,), check_trace=False)
    torch.jit.save(traced, path)


class ExportedModel:
    """An exported file behind Detectron2's model interface.

    ``raw(image)`` runs the graph on one (3, H, W) image and rebuilds the ``Instances`` with the
    TracingAdapter's ``outputs_schema`` (boxes at the input size, per-box masks);
    ``model(batched_inputs)`` does that for each input dict and applies ``detector_postprocess``
    to the input's ``height`` x ``width``, as Detectron2's models do, so that it can be given to
    ``inference_on_dataset``.
    """

    def __init__(self, path: str, fmt: str, outputs_schema, device: str = 'cpu'):
        self.path, self.format, self.outputs_schema = path, fmt, outputs_schema
        self.device = device
        if fmt == 'onnx':
            self.session = onnxruntime_session(path)
            self.input_name = self.session.get_inputs()[0].name
        else:
            self.module = torch.jit.load(path, map_location=device)

    @torch.no_grad()
    def run(self, image: torch.Tensor) -> tuple:
        image = image.float()
        if self.format == 'onnx':
            outs = self.session.run(None, {self.input_name: image.cpu().numpy()})
            return tuple(torch.from_numpy(np.asarray(o)) for o in outs)
        return tuple(self.module(image.to(self.device)))

    def raw(self, image: torch.Tensor) -> Instances:
        return self.outputs_schema(self.run(image))[0]['instances']

    def __call__(self, batched_inputs):
        results = []
        for item in batched_inputs:
            instances = self.raw(item['image'])
            height = item.get('height', int(instances.image_size[0]))
            width = item.get('width', int(instances.image_size[1]))
            results.append({'instances': detector_postprocess(instances, height, width)})
        return results


# ----------------------------------------------------------------------------------------------
# the check
def _match(ref: Instances, out: Instances) -> list[tuple[int, int]]:
    """Pairs (PyTorch index, exported index): each PyTorch detection, in score order, takes the
    unmatched exported detection of its class whose box is nearest (max abs coordinate)."""
    if len(ref) == 0 or len(out) == 0:
        return []
    rb, ob = ref.pred_boxes.tensor.float().cpu(), out.pred_boxes.tensor.float().cpu()
    dist = (rb[:, None, :] - ob[None, :, :]).abs().amax(-1)
    dist[ref.pred_classes.cpu()[:, None] != out.pred_classes.cpu()[None, :]] = math.inf
    pairs = []
    for i in range(len(ref)):
        j = int(dist[i].argmin())
        if math.isfinite(float(dist[i, j])):
            pairs.append((i, j))
            dist[:, j] = math.inf
    return pairs


def _pasted(instances: Instances, index: list[int], height: int, width: int) -> torch.Tensor:
    masks = instances.pred_masks[index].float().cpu()
    boxes = instances.pred_boxes[index].to('cpu')
    return ROIMasks(masks[:, 0]).to_bitmasks(boxes, height, width, 0.5).tensor


def compare(ref: Instances, out: Instances) -> dict:
    """Numbers of the exported model's raw outputs against PyTorch's, for one image."""
    pairs = _match(ref, out)
    ri = [i for i, _ in pairs]
    oi = [j for _, j in pairs]
    result = dict(pytorch=len(ref), exported=len(out), matched=len(pairs),
                  same_image_size=[int(v) for v in out.image_size] == [int(v) for v in
                                                                        ref.image_size],
                  in_order=len(ref) == len(out) == len(pairs) and ri == oi,
                  max_box_diff=0.0, max_score_diff=0.0)
    if pairs:
        result['max_box_diff'] = float((ref.pred_boxes.tensor[ri].cpu()
                                        - out.pred_boxes.tensor[oi].cpu()).abs().max())
        result['max_score_diff'] = float((ref.scores[ri].cpu() - out.scores[oi].cpu()).abs().max())
    if ref.has('pred_masks'):
        result.update(min_mask_iou=1.0, mean_mask_iou=1.0, max_mask_prob_diff=0.0)
        if pairs:
            height, width = (int(v) for v in ref.image_size)
            a, b = _pasted(ref, ri, height, width), _pasted(out, oi, height, width)
            inter = (a & b).flatten(1).sum(1).double()
            union = (a | b).flatten(1).sum(1).double()
            iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
            result.update(
                min_mask_iou=float(iou.min()), mean_mask_iou=float(iou.mean()),
                max_mask_prob_diff=float((ref.pred_masks[ri].cpu()
                                          - out.pred_masks[oi].cpu()).abs().max()))
    return result


def check_passed(result: dict, atol: float, min_mask_iou: float) -> bool:
    return (result['pytorch'] == result['exported'] == result['matched']
            and result['same_image_size']
            and result['max_box_diff'] <= atol and result['max_score_diff'] <= atol
            and result.get('min_mask_iou', 1.0) >= min_mask_iou)


@torch.no_grad()
def check_export(model, exported: ExportedModel, samples: list[dict], atol: float,
                 min_mask_iou: float, references: Optional[list] = None) -> list[dict]:
    """Run PyTorch and the exported model on each sample input; log and return the numbers."""
    results = []
    for k, sample in enumerate(samples):
        ref = (references[k] if references and references[k] is not None
               else raw_inference(model, [{'image': sample['image']}])[0]['instances'])
        result = compare(ref, exported.raw(sample['image']))
        result['size'] = list(sample['image'].shape[-2:])
        result['passed'] = check_passed(result, atol, min_mask_iou)
        msg = (f"check {exported.format} vs PyTorch at {result['size'][0]}x{result['size'][1]}: "
               f"{result['exported']} / {result['pytorch']} detections, {result['matched']} "
               f"matched{' in the same order' if result['in_order'] else ''}, max |box diff| "
               f"{result['max_box_diff']:.2e} px, max |score diff| {result['max_score_diff']:.2e}")
        if 'min_mask_iou' in result:
            msg += (f", mask IoU min {result['min_mask_iou']:.4f} mean "
                    f"{result['mean_mask_iou']:.4f} (max |mask prob diff| "
                    f"{result['max_mask_prob_diff']:.2e})")
        if result['pytorch'] == 0:
            msg += (' -- PyTorch detects nothing here, so boxes, scores and masks went unchecked '
                    '(another --sample-image, or a lower score threshold, checks them)')
        (logger.info if result['passed'] else logger.error)(
            msg + ('' if result['passed'] else f' -- FAILED (--atol {atol}, --min-mask-iou '
                                                f'{min_mask_iou})'))
        results.append(result)
    return results
