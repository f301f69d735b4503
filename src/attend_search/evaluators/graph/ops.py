"""The op, the unit every counter reads: one ATen op of an inference forward, with the values
it reads and makes. A spec's walk (:mod:`.walk`) and a module's trace (:mod:`.traced_ops`)
both record ops of this one type; cost sums them, the latency model fuses them into kernels
(:mod:`..latency.kernels`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

FLOAT32_BYTES = 4
CONV_OPS = {"convolution", "_convolution"}
MATMUL_OPS = {"addmm", "mm", "bmm", "baddbmm"}
POOL_OPS = {"avg_pool2d", "max_pool2d", "max_pool2d_with_indices"}
NORM_OPS = {"native_batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit"}


class Op(NamedTuple):  # a tuple: a walk makes hundreds, and tuples are made fastest
    """One ATen op of the forward pass. Values are numbered tensors, 0 the network input.
    ``macs``, ``params`` and ``elementwise`` are the walk's cost figures (a trace is costed
    by fvcore, and leaves them at their defaults)."""

    name: str  # the ATen op a trace records: "convolution", "relu_"
    op_class: str  # the kernel class (latency.kernels.OP_CLASSES)
    work: int  # a kernel's work: MACs, one per element for element-wise ops
    inputs: tuple[int, ...]  # activation values read, in argument order
    output: int
    weight_bytes: int  # parameters and buffers read (BN statistics, the blur)
    module: str  # its module path, as ``named_modules()`` names it
    pad: int = 0  # elements of the padded copy LiteRT makes (tflite_padded)
    macs: int = 0  # cost.analytic's rule
    params: int = 0
    elementwise: bool = False  # may write over an input of its size (peak memory)
    zero: bool = False  # multiplies by a constant zero (NAS-Bench-201's none): foldable
    # what onnxruntime's blocked layout decides by (latency.nchwc): a convolution's
    # (in, out, groups); a pooling's or a concatenation's output channels
    channels: tuple[int, ...] = ()
    ceil_mode: bool = False  # a pooling whose windows are counted in ceil mode


@dataclass
class Trace:
    """The ops of one forward pass, traced or walked, and the values they make."""

    ops: list[Op] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # bytes of each value
    outputs: set[int] = field(default_factory=set)  # values the network returns
    image: bool = False  # is the input (value 0) NCHW


def tflite_padded(
    sides: tuple[int, ...],
    kernels: tuple[int, ...],
    strides: tuple[int, ...],
    paddings: tuple[int, ...],
) -> tuple[int, ...] | None:
    """The padded input sides of a convolution that LiteRT pads with a PAD op of its own, or
    None where its convolution pads as PyTorch does.

    TFLite convolutions pad only TensorFlow's way: VALID (none) or SAME (``ceil(side /
    stride)`` outputs, the smaller half of the padding before). PyTorch pads ``padding`` on
    both sides, which is SAME at stride 1 but not where a stride-2 window needs less padding
    before than after (``k = 3`` or ``5`` on an even side): the converter then writes a PAD
    and a VALID convolution, one more pass over the input.
    """
    for side, kernel, stride, pad in zip(sides, kernels, strides, paddings):
        same = -(-side // stride)
        total = max((same - 1) * stride + kernel - side, 0)
        torch_out = (side + 2 * pad - kernel) // stride + 1
        if pad and (torch_out != same or total != 2 * pad):
            return tuple(side + 2 * pad for side, pad in zip(sides, paddings))
    return None


def tflite_pool_padded(
    sides: tuple[int, ...], kernels: tuple[int, ...], strides: tuple[int, ...]
) -> tuple[int, ...] | None:
    """The padded input sides of an unpadded ``ceil_mode`` average pooling whose last window
    overhangs the input, or None where every window fits. LiteRT pads the input with zeros
    (PAD), pools, and multiplies each output by its window's size over the part inside."""
    if all((side - kernel) % stride == 0 for side, kernel, stride in zip(sides, kernels, strides)):
        return None
    return tuple(
        -(-(side - kernel) // stride) * stride + kernel
        for side, kernel, stride in zip(sides, kernels, strides)
    )


def conv_class(in_channels: int, groups: int, window: int) -> str:
    """The kernel class of a (not transposed) convolution, traced or walked alike."""
    if groups == 1:
        return "pointwise" if window == 1 else "conv"
    return "depthwise" if groups == in_channels else "grouped"
