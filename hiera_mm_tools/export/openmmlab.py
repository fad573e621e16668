"""ONNX export of MMSegmentation segmentors and MMDetection detectors (Hiera or any backbone)
with ``torch.onnx``'s TorchScript-based exporter, and its check with onnxruntime.

What a graph holds, for a batch of images as the test pipeline delivers them (float32, N x 3 x
H x W, the channel order the pipeline loads, BGR for mmcv's loader, 0-255):

* the data preprocessor's test-time work: channel swap, mean / std, padding (mmseg:
  ``test_cfg.size_divisor`` or ``test_cfg.size``; mmdet: ``pad_size_divisor``);
* segmentors: backbone, neck, decode head, logits resized as mmseg resizes them and the padding
  cropped off: ``logits`` (N x classes x H x W) and ``labels`` (N x 1 x H x W, int64);
* detectors: ``extract_feat`` (backbone and neck): one output per feature level.

Batch, height and width are dynamic. Nothing here decides on sizes in Python, and the Hiera
trunk does not either, so the graph is right at every size, which ``compare_with_pytorch``
checks against the framework's own inference (mmseg's ``test_step``, mmdet's data preprocessor
and ``extract_feat``). Adaptive average pooling to a grid (the PSP module of UperNet) has no
dynamic ONNX form: it is replaced by an exact equivalent written with matrix products.

Framework-neutral (mmengine models); mmseg / mmdet are imported only by the functions that
build their data samples. onnxruntime is needed only to check and evaluate.
"""
from __future__ import annotations

import copy
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hiera_mm.models import onnx as hiera_onnx

from .runtime import onnxruntime_session

INPUT_NAME = 'input'
SEG_OUTPUTS = ('logits', 'labels')


# ------------------------------------------------------------------------------------------------
# graph pieces
def _nonnegative(value):
    """max(value, 0) for a Python int and for a size traced as a tensor."""
    return value.clamp(min=0) if torch.is_tensor(value) else max(value, 0)


class ImagePreprocess(nn.Module):
    """The test-time work of an mmseg ``SegDataPreProcessor`` or an mmengine / mmdet
    ``ImgDataPreprocessor`` (``DetDataPreProcessor``) on a stacked batch: channel swap (3-channel
    inputs), ``(x - mean) / std``, padding bottom / right to ``size_divisor`` or to ``size``
    with ``pad_value``. Batch-level augmentations are training-only and not part of it."""

    def __init__(self, data_preprocessor: nn.Module):
        super().__init__()
        pre = data_preprocessor
        if hasattr(pre, 'channel_conversion'):  # mmseg
            swap = bool(pre.channel_conversion)
            test_cfg = dict(pre.test_cfg or {})
            unknown = set(test_cfg) - {'size', 'size_divisor'}
            if unknown:
                raise ValueError(f'data_preprocessor.test_cfg {test_cfg}: only size and '
                                 f'size_divisor are understood (as mmseg), not {sorted(unknown)}')
            self.size = tuple(test_cfg['size']) if test_cfg.get('size') else None
            self.size_divisor = None if self.size else test_cfg.get('size_divisor')
            self.pad_value = float(pre.pad_val)
        elif hasattr(pre, '_channel_conversion') and hasattr(pre, 'pad_size_divisor'):
            swap = bool(pre._channel_conversion)  # mmengine's ImgDataPreprocessor, mmdet's
            self.size = None
            self.size_divisor = pre.pad_size_divisor
            self.pad_value = float(pre.pad_value)
        else:
            raise TypeError(f'data preprocessor {type(pre).__name__}: expected mmseg\'s '
                            "SegDataPreProcessor or mmengine's ImgDataPreprocessor (mmdet's "
                            'DetDataPreProcessor)')
        self.swap_channels = swap
        self.normalize = bool(getattr(pre, '_enable_normalize', False))
        if self.normalize:
            self.register_buffer('mean', pre.mean.detach().clone().float().view(1, -1, 1, 1))
            self.register_buffer('std', pre.std.detach().clone().float().view(1, -1, 1, 1))
        if self.size_divisor is not None and int(self.size_divisor) <= 1:
            self.size_divisor = None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.float()
        if self.swap_channels and _static_size(x, 1) == 3:
            x = x[:, [2, 1, 0]]
        if self.normalize:
            x = (x - self.mean) / self.std
        height, width = x.shape[-2:]
        if self.size is not None:
            pad_h = _nonnegative(self.size[0] - height)
            pad_w = _nonnegative(self.size[1] - width)
        elif self.size_divisor is not None:
            pad_h, pad_w = (-height) % self.size_divisor, (-width) % self.size_divisor
        else:
            return x
        return F.pad(x, (0, pad_w, 0, pad_h), value=self.pad_value)

    def describe(self) -> str:
        parts = ['BGR->RGB' if self.swap_channels else 'channels as given']
        if self.normalize:
            parts.append('mean ' + _fmt(self.mean.flatten().tolist()) + ', std '
                         + _fmt(self.std.flatten().tolist()))
        if self.size is not None:
            parts.append(f'padded to {self.size} with {self.pad_value:g}')
        elif self.size_divisor is not None:
            parts.append(f'padded to multiples of {self.size_divisor} with {self.pad_value:g}')
        else:
            parts.append('no padding')
        return '; '.join(parts)


def _static_size(x: torch.Tensor, dim: int) -> int:
    """A size that is fixed in the exported graph (channels), as an int, without the tracer's
    warning about a Python value taken from the trace."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        return int(x.shape[dim])


def _fmt(values):
    return '(' + ', '.join(f'{v:g}' for v in values) + ')'


def _pool_matrix(n, out: int, like: torch.Tensor) -> torch.Tensor:
    """(out, n) averaging matrix of adaptive pooling of n values into out bins."""
    idx = torch.arange(out, device=like.device)
    start = torch.div(idx * n, out, rounding_mode='floor')
    stop = torch.div((idx + 1) * n + out - 1, out, rounding_mode='floor')
    pos = torch.arange(n, device=like.device)
    inside = (pos[None, :] >= start[:, None]) & (pos[None, :] < stop[:, None])
    return inside.to(like.dtype) / (stop - start)[:, None].to(like.dtype)


def exact_adaptive_avg_pool2d(x: torch.Tensor, output_size) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` with the bins computed from the input size by graph ops
    (PyTorch's bins: ``[floor(i * n / o), ceil((i + 1) * n / o))``), so that an exported graph
    is right at every size. torch.onnx has no dynamic form of it: at a grid other than 1 x 1 it
    fails or fixes the bins of the export size (as mmdeploy's rewrite does)."""
    size = output_size if isinstance(output_size, (tuple, list)) else (output_size, ) * 2
    out_h = size[0] if size[0] is not None else x.shape[-2]
    out_w = size[1] if size[1] is not None else x.shape[-1]
    if out_h == 1 and out_w == 1:
        return x.mean(dim=(-2, -1), keepdim=True)
    rows = _pool_matrix(x.shape[-2], out_h, x)  # (out_h, H)
    cols = _pool_matrix(x.shape[-1], out_w, x)  # (out_w, W)
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


class ExactAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` as ``exact_adaptive_avg_pool2d``: right at every size in an
    exported graph."""

    def __init__(self, output_size):
        super().__init__()
        size = output_size if isinstance(output_size, (tuple, list)) else (output_size, ) * 2
        self.output_size = tuple(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return exact_adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f'output_size={self.output_size}'


def replace_adaptive_pooling(module: nn.Module) -> list[str]:
    """Replace every ``nn.AdaptiveAvgPool2d`` in ``module`` by ``ExactAdaptiveAvgPool2d``;
    returns the names replaced."""
    replaced = []
    for name, child in list(module.named_modules()):
        for child_name, grandchild in list(child.named_children()):
            if isinstance(grandchild, nn.AdaptiveAvgPool2d):
                setattr(child, child_name, ExactAdaptiveAvgPool2d(grandchild.output_size))
                replaced.append(f'{name}.{child_name}' if name else child_name)
    return replaced


class SegmentorGraph(nn.Module):
    """An mmseg ``EncoderDecoder`` (or a subclass: cascade, ...) from images to per-pixel
    outputs, as mmseg's whole-image inference computes them (``test_cfg.mode='whole'``)."""

    def __init__(self, segmentor: nn.Module, outputs: Sequence[str] = SEG_OUTPUTS):
        super().__init__()
        if not hasattr(segmentor, 'encode_decode') or not hasattr(segmentor, 'decode_head'):
            raise TypeError(f'{type(segmentor).__name__} is no mmseg EncoderDecoder: the export '
                            'runs encode_decode (backbone, neck, decode head)')
        if not outputs or set(outputs) - set(SEG_OUTPUTS):
            raise ValueError(f'segmentation outputs {tuple(outputs)}: choose from {SEG_OUTPUTS}')
        self.preprocess = ImagePreprocess(segmentor.data_preprocessor)
        self.segmentor = segmentor
        self.outputs = tuple(o for o in SEG_OUTPUTS if o in outputs)
        head = segmentor.decode_head
        head = head[-1] if isinstance(head, nn.ModuleList) else head
        self.binary = getattr(head, 'out_channels', None) == 1
        self.threshold = float(getattr(head, 'threshold', None) or 0.3)

    def forward(self, image: torch.Tensor):
        height, width = image.shape[-2:]
        x = self.preprocess(image)
        size = x.shape[-2:]
        # mmseg resizes the logits to the padded size ('pad_shape'; without padding the image
        # size), then crops the padding off (postprocess_result).
        metas = [dict(img_shape=size, pad_shape=size, ori_shape=size)]
        logits = self.segmentor.encode_decode(x, metas)[:, :, :height, :width]
        outs = []
        if 'logits' in self.outputs:
            outs.append(logits)
        if 'labels' in self.outputs:
            if self.binary:  # one output channel: binary, by threshold (as mmseg)
                outs.append((logits.sigmoid() > self.threshold).long())
            else:
                outs.append(logits.argmax(dim=1, keepdim=True))
        return tuple(outs)


class DetectorFeatureGraph(nn.Module):
    """An mmdet detector's ``extract_feat`` (backbone and neck) on images: one output per level."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        if not hasattr(detector, 'extract_feat'):
            raise TypeError(f'{type(detector).__name__} has no extract_feat')
        self.preprocess = ImagePreprocess(detector.data_preprocessor)
        self.detector = detector

    def forward(self, image: torch.Tensor):
        feats = self.detector.extract_feat(self.preprocess(image))
        return tuple(feats) if isinstance(feats, (list, tuple)) else (feats, )


# ------------------------------------------------------------------------------------------------
# building the graph and exporting it
@dataclass
class ExportedGraph:
    """A graph module with its ONNX names, ready for ``export_onnx``."""
    module: nn.Module
    task: str  # 'segmentation' | 'detection-features'
    output_names: list
    dynamic_axes: dict
    notes: list = field(default_factory=list)


def build_graph(model: nn.Module, framework: str, seg_outputs: Sequence[str] = SEG_OUTPUTS,
                example: Optional[torch.Tensor] = None) -> ExportedGraph:
    """The graph module for ``model`` (a copy; ``model`` itself is left as it is): ``framework``
    'mmseg' gives ``SegmentorGraph``, 'mmdet' ``DetectorFeatureGraph``. ``example`` (an image
    batch) names the detector's levels."""
    from mmengine.model import revert_sync_batchnorm
    module = revert_sync_batchnorm(copy.deepcopy(model)).eval()
    notes = []
    replaced = replace_adaptive_pooling(module)
    if replaced:
        notes.append(f'adaptive average pooling in {", ".join(replaced)} written as matrix '
                     'products (exact; dynamic in ONNX)')
    batch = {0: 'batch', 2: 'height', 3: 'width'}
    if framework == 'mmseg':
        mode = (getattr(model, 'test_cfg', None) or {}).get('mode', 'whole')
        if mode != 'whole':
            notes.append(f"test_cfg.mode is '{mode}': the graph runs whole-image inference "
                         '(and is checked against mmseg in whole mode)')
        graph = SegmentorGraph(module, seg_outputs).eval()
        notes.append(f'preprocessing in the graph: {graph.preprocess.describe()}')
        if graph.preprocess.size is None and graph.preprocess.size_divisor is None:
            notes.append('the config pads no test image (data_preprocessor.test_cfg): at sizes '
                         'that are no multiple of 32 the backbone pads for itself and mmseg '
                         'stretches the logits of the padded map over the image; '
                         "--cfg-options model.data_preprocessor.test_cfg.size_divisor=32 crops "
                         'them instead (the graph follows the config either way)')
        return ExportedGraph(graph, 'segmentation', list(graph.outputs),
                             {INPUT_NAME: batch, **{o: batch for o in graph.outputs}}, notes)
    if framework == 'mmdet':
        graph = DetectorFeatureGraph(module).eval()
        notes.append(f'preprocessing in the graph: {graph.preprocess.describe()}')
        if example is None:
            example = torch.zeros(1, 3, 64, 64)
        with torch.no_grad():
            num = len(graph(example))
        names = [f'feat{i}' for i in range(num)]
        axes = {INPUT_NAME: batch}
        axes.update({n: {0: 'batch', 2: f'height_{n}', 3: f'width_{n}'} for n in names})
        return ExportedGraph(graph, 'detection-features', names, axes, notes)
    raise ValueError(f"framework must be 'mmseg' or 'mmdet', got {framework!r}")


def export_onnx(graph: ExportedGraph, example: torch.Tensor, path: str,
                opset: Optional[int] = None) -> dict:
    """Export with torch.onnx's TorchScript-based exporter (``dynamo=False``) at
    ``hiera_mm.models.onnx.choose_opset(graph.module, opset)``; returns what the export took:
    seconds, file bytes, the opset and the distinct tracer warnings (Python values the trace fixed
    at the example's size; none come from the Hiera trunk)."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter('always', torch.jit.TracerWarning)
        opset = hiera_onnx.export(graph.module, (example, ), path, opset,
                                  input_names=[INPUT_NAME], output_names=graph.output_names,
                                  dynamic_axes=graph.dynamic_axes, do_constant_folding=True)
    seconds = time.perf_counter() - start
    tracer = sorted({f'{w.filename}:{w.lineno}: {str(w.message).splitlines()[0][:120]}'
                     for w in caught if issubclass(w.category, torch.jit.TracerWarning)})
    return dict(seconds=seconds, bytes=os.path.getsize(path), opset=opset,
                tracer_warnings=tracer)


# ------------------------------------------------------------------------------------------------
# running and checking the exported graph
def run_session(session, images: torch.Tensor) -> dict:
    """Outputs of the exported graph for a batch of images (N x 3 x H x W, 0-255), by name."""
    names = [o.name for o in session.get_outputs()]
    outs = session.run(names, {INPUT_NAME: images.float().numpy()})
    return dict(zip(names, outs))


def sample_images(shape: Sequence[int], batch: int, seed: int = 0,
                image: Optional[np.ndarray] = None) -> torch.Tensor:
    """A uint8 batch (N x 3 x H x W): ``image`` (H x W x 3, as mmcv loads it) resized to the
    shape, each batch entry shifted a little so they differ; else smooth random images (noise
    would leave a segmentor guessing between near-equal classes)."""
    height, width = (int(s) for s in shape)
    gen = torch.Generator().manual_seed(seed)
    if image is not None:
        base = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        base = F.interpolate(base, size=(height, width), mode='bilinear', align_corners=False)
        out = [torch.roll(base, shifts=(3 * i, 5 * i), dims=(2, 3)) for i in range(batch)]
        return torch.cat(out).round().clamp(0, 255).to(torch.uint8)
    coarse = torch.rand(batch, 3, max(2, height // 16), max(2, width // 16), generator=gen)
    smooth = F.interpolate(coarse, size=(height, width), mode='bicubic', align_corners=False)
    noise = 0.1 * torch.rand(batch, 3, height, width, generator=gen)
    return ((smooth + noise).clamp(0, 1) * 255).round().to(torch.uint8)


def pytorch_reference(model: nn.Module, framework: str, images: torch.Tensor) -> dict:
    """The framework's own inference on ``images`` (uint8 N x 3 x H x W, as the data loader
    delivers them): mmseg's ``test_step`` in whole mode -> ``logits`` (the seg_logits mmseg
    returns; sigmoid probabilities for a one-channel head) and ``labels``; mmdet's data
    preprocessor and ``extract_feat`` -> ``feat{i}``."""
    height, width = images.shape[-2:]
    inputs = list(images)
    with torch.no_grad():
        if framework == 'mmseg':
            from mmseg.structures import SegDataSample
            samples = [SegDataSample(metainfo=dict(img_shape=(height, width),
                                                   ori_shape=(height, width)))
                       for _ in inputs]
            test_cfg = model.test_cfg
            model.test_cfg = type(test_cfg)(dict(test_cfg, mode='whole')) if test_cfg else \
                dict(mode='whole')
            try:
                out = model.test_step(dict(inputs=inputs, data_samples=samples))
            finally:
                model.test_cfg = test_cfg
            return dict(logits=torch.stack([s.seg_logits.data for s in out]).numpy(),
                        labels=torch.stack([s.pred_sem_seg.data for s in out]).long().numpy())
        from mmdet.structures import DetDataSample
        samples = [DetDataSample(metainfo=dict(img_shape=(height, width),
                                               ori_shape=(height, width), scale_factor=(1., 1.)))
                   for _ in inputs]
        data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), False)
        feats = model.extract_feat(data['inputs'])
        return {f'feat{i}': f.numpy() for i, f in enumerate(feats)}


@dataclass
class Comparison:
    """ONNX vs PyTorch at one input shape."""
    shape: tuple
    max_abs: dict  # output name -> max |onnx - pytorch|
    scale: dict  # output name -> max |pytorch| (what the error is relative to)
    label_agreement: Optional[float] = None  # segmentation: fraction of equal labels
    seconds: float = 0.0

    def worst_relative(self) -> float:
        return max((self.max_abs[k] / max(1.0, self.scale[k]) for k in self.max_abs), default=0.)

    def ok(self, tolerance: float, min_agreement: float) -> bool:
        good = self.worst_relative() <= tolerance
        if self.label_agreement is not None:
            good = good and self.label_agreement >= min_agreement
        return good

    def line(self) -> str:
        parts = []
        if self.max_abs:
            parts.append('max abs error ' + ', '.join(
                f'{k} {self.max_abs[k]:.2e} (of max |{k}| {self.scale[k]:.3g})'
                for k in self.max_abs))
        if self.label_agreement is not None:
            parts.append(f'equal labels {100 * self.label_agreement:.4f}%')
        text = f'input {"x".join(str(s) for s in self.shape)}: ' + '; '.join(parts)
        return text + f'; onnxruntime {self.seconds:.2f} s'


def compare_with_pytorch(session, model: nn.Module, framework: str,
                         images: torch.Tensor) -> Comparison:
    """Run the exported graph and the framework's own inference on the same images."""
    ref = pytorch_reference(model, framework, images)
    start = time.perf_counter()
    got = run_session(session, images)
    seconds = time.perf_counter() - start
    max_abs, scale, agreement = {}, {}, None
    for name, value in got.items():
        if name == 'labels':
            agreement = float((value == ref['labels']).mean())
            continue
        expected = ref[name]
        if name == 'logits' and value.shape[1] == 1:  # mmseg keeps the sigmoid for one channel
            value = 1.0 / (1.0 + np.exp(-value))
        if value.shape != expected.shape:
            raise AssertionError(f'{name}: ONNX shape {value.shape} vs PyTorch {expected.shape}')
        max_abs[name] = float(np.abs(value - expected).max())
        scale[name] = float(np.abs(expected).max())
    return Comparison(tuple(images.shape), max_abs, scale, agreement, seconds)


def evaluate_segmentation(cfg, model: nn.Module, session, max_images: Optional[int] = None):
    """The config's test set and test evaluator (mmseg's IoUMetric) on PyTorch's predictions
    and on the exported graph's, image by image; the graph's logits go through mmseg's own
    ``postprocess_result`` (resize to the original shape, argmax). Returns
    ``(pytorch metrics, onnx metrics, fraction of equal labels, images)``."""
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    if max_images:
        loader_cfg.dataset['indices'] = int(max_images)
    loader = Runner.build_dataloader(loader_cfg)
    evaluators = [Evaluator(copy.deepcopy(cfg.test_evaluator)) for _ in range(2)]
    for ev in evaluators:
        ev.dataset_meta = loader.dataset.metainfo
    test_cfg = model.test_cfg
    model.test_cfg = type(test_cfg)(dict(test_cfg, mode='whole'))
    same = total = images = 0
    try:
        with torch.no_grad():
            for data in loader:
                onnx_samples = copy.deepcopy(data['data_samples'])
                ref = model.test_step(data)
                logits = run_session(session, torch.stack(data['inputs']))['logits']
                pred = model.postprocess_result(torch.from_numpy(logits), onnx_samples)
                evaluators[0].process(data_samples=ref, data_batch=data)
                evaluators[1].process(data_samples=pred, data_batch=data)
                for a, b in zip(ref, pred):
                    same += int((a.pred_sem_seg.data == b.pred_sem_seg.data).sum())
                    total += a.pred_sem_seg.data.numel()
                images += len(ref)
    finally:
        model.test_cfg = test_cfg
    metrics = [ev.evaluate(images) for ev in evaluators]
    return metrics[0], metrics[1], same / max(total, 1), images


__all__ = ['Comparison', 'DetectorFeatureGraph', 'ExactAdaptiveAvgPool2d', 'ExportedGraph',
           'ImagePreprocess', 'SegmentorGraph', 'build_graph', 'compare_with_pytorch',
           'evaluate_segmentation', 'exact_adaptive_avg_pool2d', 'export_onnx',
           'onnxruntime_session', 'pytorch_reference', 'replace_adaptive_pooling', 'run_session',
           'sample_images']
