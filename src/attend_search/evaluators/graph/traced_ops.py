"""The ops of a module's real forward pass, for :mod:`..latency.kernels` to fuse: what any
``nn.Module`` is read as (a spec's ops come from its walk, without PyTorch). The counting
and classing rules are :mod:`..latency.kernels`'s docstring."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakTensorKeyDictionary

from ...search_space import Spec
from ..model_input import Shape, as_model
from .ops import (
    CONV_OPS,
    FLOAT32_BYTES,
    MATMUL_OPS,
    Op,
    Trace,
    conv_class,
    tflite_padded,
    tflite_pool_padded,
)
from .trace import is_elementwise, record_forward

_VIEWS = {
    "view",
    "_unsafe_view",
    "reshape",
    "_reshape_alias",
    "t",
    "transpose",
    "permute",
    "expand",
    "squeeze",
    "unsqueeze",
    "flatten",
    "unflatten",
    "alias",
    "detach",
    "slice",
    "select",
    "as_strided",
    "split",
    "split_with_sizes",
    "chunk",
    "unbind",
    "lift_fresh",
}
_LIKE = {"empty_like", "zeros_like", "ones_like", "full_like", "rand_like", "randn_like"}
# Max and average pooling are separate classes: runtimes implement them apart (onnxruntime's
# x86 average pooling with ceil_mode runs ~10x slower per byte than its max pooling).
_POOL = {"max_pool2d": "max_pool", "max_pool2d_with_indices": "max_pool", "avg_pool2d": "avg_pool"}
_ADAPTIVE_POOL = {
    "adaptive_avg_pool2d": "avg_pool",
    "_adaptive_avg_pool2d": "avg_pool",
    "adaptive_max_pool2d": "max_pool",
    "mean": "avg_pool",
}
_UPSAMPLE = {
    "upsample_nearest2d": 1,
    "_upsample_nearest_exact2d": 1,
    "upsample_bilinear2d": 4,
    "upsample_bicubic2d": 16,
}
_CONCAT = {"cat", "stack"}
_SOFTMAX = {"_softmax", "_safe_softmax", "softmax", "_log_softmax", "log_softmax"}
_LAYER_NORM = {"native_layer_norm", "layer_norm"}
_GELU = {"gelu", "gelu_"}
_COPY = {"clone", "_to_copy", "copy", "copy_", "constant_pad_nd"}


class _KernelLog:
    """Every ATen op with the values it reads and writes and the module running it.

    A value is a tensor: an in-place op makes a new value (so a fused activation follows its
    convolution as a separate op), a view is its base's value.
    """

    def __init__(self):
        self.trace = Trace()
        self.values = WeakTensorKeyDictionary()  # tensor -> id of the value it holds

    def input(self, tensor: torch.Tensor) -> int:
        self.trace.sizes.append(tensor.numel() * FLOAT32_BYTES)
        self.values[tensor] = len(self.trace.sizes) - 1
        return self.values[tensor]

    def op(self, func, args: tuple, kwargs: dict, out, module: str) -> None:
        name = func.overloadpacket.__name__
        if name in _LIKE:  # a new tensor shaped like an activation: no data flows
            return
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        outs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        inputs = tuple(dict.fromkeys(self.values[t] for t in tensors if t in self.values))
        if not inputs or not outs:
            return  # computed from weights alone: a constant the exporter folds
        if name in _VIEWS:
            for view in outs:
                self.values[view] = inputs[0]
            return
        op_class, macs = _classify(func, args, tensors, outs[0], self.values)
        weights = sum(t.numel() for t in tensors if t not in self.values) * FLOAT32_BYTES
        self.trace.ops.append(
            Op(
                name,
                op_class,
                macs,
                inputs,
                self.input(outs[0]),
                weights,
                module,
                _pad(name, args, tensors),
                zero=name in ("mul", "mul_") and len(tensors) == 1 and args[1] == 0,
                channels=_channels(name, args, tensors, outs[0]),
                ceil_mode=_ceil_mode(name, args),
            )
        )

    def output(self, y) -> None:
        self.trace.outputs = {
            self.values[t]
            for t in tree_leaves(y)
            if isinstance(t, torch.Tensor) and t in self.values
        }


def _classify(
    func,
    args: tuple,
    tensors: list[torch.Tensor],
    out: torch.Tensor,
    activations: WeakTensorKeyDictionary,
) -> tuple[str, int]:
    """``(op class, MACs)`` of one ATen op (the counting rules are :mod:`..latency.kernels`'s);
    ``activations`` holds the tensors that are activations (the others are weights)."""
    name = func.overloadpacket.__name__
    if name in CONV_OPS:
        x, weight = tensors[0], tensors[1]
        transposed, groups = args[6], args[8]
        window = math.prod(weight.shape[2:])
        macs = (x if transposed else out).numel() * weight.shape[1] * window
        return (
            "conv" if transposed and groups == 1 else conv_class(x.shape[1], groups, window)
        ), macs
    if name in MATMUL_OPS:  # the last two tensors are the matrices
        both = all(t in activations for t in tensors[-2:])
        return ("matmul" if both else "linear"), out.numel() * tensors[-1].shape[-2]
    if name in _POOL:
        return _POOL[name], out.numel() * math.prod(args[1])
    if name in _ADAPTIVE_POOL:
        spatial = math.prod(out.shape[2:]) if out.dim() > 2 else 1
        return ("global_pool" if spatial == 1 else _ADAPTIVE_POOL[name]), tensors[0].numel()
    if name in _UPSAMPLE:
        return "upsample", out.numel() * _UPSAMPLE[name]
    if name in _CONCAT:
        return "concat", 0
    if name in _SOFTMAX:
        return "softmax", out.numel()
    if name in _LAYER_NORM:
        return "layer_norm", out.numel()
    if name in _GELU:  # tagged pointwise: before the element-wise rule
        return "gelu", out.numel()
    if name in _COPY:  # clone is tagged pointwise too
        return "copy", 0
    if is_elementwise(func):
        return "elementwise", out.numel()
    return "unknown", 0


def _channels(name: str, args: tuple, tensors: list[torch.Tensor], out: torch.Tensor) -> tuple:
    """:class:`Op`'s ``channels``: a convolution's (in, out, groups); an image pooling's or
    concatenation's output channels."""
    if name in CONV_OPS and not args[6] and tensors[0].dim() == 4:  # onnxruntime blocks 2-D
        return tensors[0].shape[1], tensors[1].shape[0], args[8]
    if (name in _POOL or name in _CONCAT) and out.dim() == 4:
        return (out.shape[1],)
    return ()


def _ceil_mode(name: str, args: tuple) -> bool:
    at = {"avg_pool2d": 4, "max_pool2d": 5, "max_pool2d_with_indices": 5}.get(name)
    return at is not None and len(args) > at and bool(args[at])


def _pad(name: str, args: tuple, tensors: list[torch.Tensor]) -> int:
    """Elements of the padded input LiteRT writes before a convolution or a ceil-mode
    average pooling (0 for none)."""
    x, padded = tensors[0], None
    if name in CONV_OPS and not args[6]:  # transposed convolutions are not padded so
        padded = tflite_padded(
            tuple(x.shape[2:]), tuple(tensors[1].shape[2:]), tuple(args[3]), tuple(args[4])
        )
    elif name == "avg_pool2d" and len(args) > 4 and args[4] and not any(args[3]):
        padded = tflite_pool_padded(tuple(x.shape[2:]), tuple(args[1]), tuple(args[2] or args[1]))
    return x.shape[1] * math.prod(padded) if padded else 0


def trace_ops(model_or_spec: nn.Module | Spec, input_shape: Shape | None = None) -> Trace:
    """The ops of one eval-mode forward pass of the module (a spec is built)."""
    model, shape = as_model(model_or_spec, input_shape)
    log = _KernelLog()
    record_forward(model, shape, log)
    log.trace.image = len(shape) == 4
    return log.trace
