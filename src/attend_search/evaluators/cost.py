"""Cost of a network: parameters, MACs and peak activation memory, measured or from the spec.

Two counters that agree exactly on every spec (the tests hold them to it):

- :func:`fvcore_cost` traces the real module with fvcore (any ``nn.Module`` works);
- :func:`analytic_cost` does the arithmetic on the :class:`Spec` alone (the walk of
  :mod:`.spec_walk`, which also gives the latency kernels), hundreds of times faster, for
  the explorer's inner loop and for constraints checked before anything is built.

MACs (batch 1; one multiply-accumulate counts 1, fvcore's convention). On small CPUs gating,
resampling and pooling cost real time, so they are counted, each by a declared rule:

=======================================================  =====================================
op                                                       MACs
=======================================================  =====================================
convolution (grouped, depthwise; bias free)              (in / groups) x k x k per output
                                                         element (fvcore)
AADS blur: a depthwise 3x3 convolution, fixed kernel     9 per output element (fvcore's conv)
linear (bias free)                                       in_features per output element (fvcore)
batch norm, eval mode (per-channel affine)               2 per element (fvcore)
relu, relu6                                              0: a clamp, fused into the producer
                                                         (fvcore ignores relu)
hswish, silu                                             1 per element
sigmoid, hardsigmoid gates                               1 per element
mul: attention and SE gating, the learned scalar scale   1 per output element
add: residual, condenser skip, column merge              1 per output element
max / avg pooling (condensation, ceil mode)              k x k per output element
adaptive avg pooling (SE squeeze, global pool)           1 per input element (fvcore)
nearest upsampling                                       1 per output element (fvcore)
bilinear upsampling                                      4 per output element (fvcore)
concat, flatten, views, dropout (eval)                   0: data movement (fvcore ignores them)
=======================================================  =====================================

Other ops of a foreign module count 0, as in fvcore, without a warning:
``flop_analysis(...).unsupported_ops()`` lists them. Parameters: ``sum(p.numel() for p in
model.parameters())``; buffers (BN statistics, the blur kernel) are not counted.

Peak activation memory (bytes, float32): the forward pass runs its ops one at a time, in the
module's order. A tensor is live from the op that makes it to the last op that reads it (the
network output to the end); the network input counts, it is in memory for the first layer.
Views share their base's buffer. An element-wise op (activation, eval batch norm, gate, mul,
add) writes over an input of the output's size that dies at that op, as in-place activations
do in PyTorch and inference runtimes' memory planners do for any element-wise op; so in-place
and out-of-place forms of a network give one figure. The peak is the largest sum of the
buffers live while one op runs, its inputs and output included. Weights and buffers are not
activations; tensors no op reads (max-pool indices, batch norm's saved statistics in eager
PyTorch) are not counted, nor is workspace inside an op (im2col).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from itertools import accumulate, chain
from math import prod

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

with warnings.catch_warnings():  # fvcore scripts its losses on import; torch deprecates that
    warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import elementwise_flop_counter, get_shape

from ..search_space import Spec
from .forward_trace import inference, is_elementwise, record_forward
from .model_input import Shape, as_model
from .spec_walk import ELEMENTWISE, UPSAMPLE, walk_spec


def _pool_flop_jit(inputs: list, outputs: list) -> int:
    """max_pool2d / avg_pool2d: one compare or add per window element, k x k per output."""
    kernel = [v.toIValue() for v in inputs[1].node().inputs()]
    return prod(get_shape(outputs[0])) * prod(kernel if len(kernel) == 2 else kernel * 2)


# fvcore's JIT trace names the element-wise and upsampling ops as the walk's tables do, in
# place or not; a handle of None tells fvcore the op is deliberately free. Batch norm keeps
# fvcore's own handle.
_HANDLES = {f"aten::{aten.rstrip('_')}{inplace}":
            elementwise_flop_counter(0, macs) if macs else None
            for rule, (aten, macs) in (ELEMENTWISE | UPSAMPLE).items() if rule != "batch_norm"
            for inplace in ("", "_")}
_HANDLES.update({"aten::max_pool2d": _pool_flop_jit, "aten::avg_pool2d": _pool_flop_jit})


# --------------------------------------------------------------------------- measured
def flop_analysis(model_or_spec: nn.Module | Spec, input_shape: Shape | None = None
                  ) -> FlopCountAnalysis:
    """fvcore's analysis with the rules above, already run (eval mode, zero input), for
    breakdowns by module or operator; fvcore's warnings are off (see the module docstring)."""
    model, shape = as_model(model_or_spec, input_shape)
    analysis = (FlopCountAnalysis(model, torch.zeros(shape)).set_op_handle(**_HANDLES)
                .unsupported_ops_warnings(False).uncalled_modules_warnings(False))
    with inference(model):
        analysis.total()  # traces now, in eval mode; the analysis keeps the results
    return analysis


def fvcore_cost(model_or_spec: nn.Module | Spec, input_shape: Shape | None = None
                ) -> dict[str, int]:
    """``{"params", "macs"}`` of the built model, MACs traced by fvcore."""
    model, shape = as_model(model_or_spec, input_shape)
    return {"params": sum(p.numel() for p in model.parameters()),
            "macs": int(flop_analysis(model, shape).total())}


def peak_activation_bytes(model_or_spec: nn.Module | Spec, input_shape: Shape | None = None
                          ) -> int:
    """Peak activation bytes of one forward pass of the real module, read from its aten ops
    (eval mode, zero input; the model of the module docstring)."""
    model, shape = as_model(model_or_spec, input_shape)
    log = _StorageLog({_storage(t) for t in chain(model.parameters(), model.buffers())})
    record_forward(model, shape, log)
    return _peak(log.sizes, log.ops, log.outputs)


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


# One op of a forward pass: the values it reads, the values it makes, and whether it is
# element-wise. Values are numbered tensors (0 is the network input) with sizes in bytes.
_Op = tuple[tuple[int, ...], tuple[int, ...], bool]


class _StorageLog:
    """Logs a forward pass as ops (:data:`_Op`). A value is the tensor in one storage: an op's
    output in a storage it also reads (a view, an in-place op) is that same value, so
    storages freed and reused by the allocator are told apart. Weights are left out."""

    def __init__(self, weights: set[int]):
        self.weights = weights
        self.values: dict[int, int] = {}  # storage -> the value now in it
        self.sizes: list[int] = []
        self.ops: list[_Op] = []
        self.outputs: list[int] = []

    def input(self, x: torch.Tensor) -> None:
        self.values[_storage(x)] = 0
        self.sizes.append(x.untyped_storage().nbytes())

    def op(self, func, args: tuple, kwargs: dict, out, module: str) -> None:
        read = dict.fromkeys(_storage(t) for t in tree_leaves((args, kwargs))
                             if isinstance(t, torch.Tensor))
        ins = tuple(self.values[key] for key in read if key in self.values)
        made = []
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor) or not t.untyped_storage().nbytes():
                continue
            key = _storage(t)
            if key not in read and key not in self.weights:  # else a view or in-place result
                self.values[key] = len(self.sizes)
                made.append(len(self.sizes))
                self.sizes.append(t.untyped_storage().nbytes())
        if ins or made:
            self.ops.append((ins, tuple(made), is_elementwise(func)))

    def output(self, y) -> None:
        self.outputs = [self.values[_storage(t)] for t in tree_leaves(y)
                        if isinstance(t, torch.Tensor)]


def _peak(sizes: Sequence[int], ops: Sequence[_Op], outputs: Iterable[int]) -> int:
    """Largest sum of live buffers over the steps of ``ops`` (the model in the docstring)."""
    last = {v: step for step, (ins, _, _) in enumerate(ops) for v in ins}
    last.update({v: len(ops) for v in outputs})
    buffer = {0: 0}            # value -> the value that allocated its buffer
    span = {0: [0, last[0]]}   # buffer -> first and last step it is live
    for step, (ins, made, elementwise) in enumerate(ops):
        dying = [v for v in ins if last[v] == step] if elementwise else []
        for v in (v for v in made if v in last):  # values nothing reads are not activations
            reuse = next((d for d in dying if sizes[d] == sizes[v]), None)
            if reuse is None:
                buffer[v], span[v] = v, [step, last[v]]
            else:
                dying.remove(reuse)
                buffer[v] = buffer[reuse]
                span[buffer[v]][1] = last[v]
    change = [0] * (len(ops) + 2)
    for b, (first, end) in span.items():
        change[first] += sizes[b]
        change[end + 1] -= sizes[b]
    return max(accumulate(change))


# --------------------------------------------------------------------------- analytic
def analytic_cost(spec: Spec) -> dict[str, int]:
    """``{"params", "macs", "peak_activation_bytes"}`` from the spec alone, nothing built:
    exactly what :func:`fvcore_cost`, the built model and :func:`peak_activation_bytes` give."""
    walk = walk_spec(spec)
    ops = [(op.inputs, (op.output,), op.elementwise) for op in walk.ops]
    return {"params": walk.params, "macs": walk.macs,
            "peak_activation_bytes": _peak(walk.sizes, ops, [walk.output])}
