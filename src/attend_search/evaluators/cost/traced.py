"""Cost of a real module, from a trace: the measured counterpart of :func:`.analytic.analytic_cost`,
for any ``nn.Module``, by the rules of :mod:`.analytic`'s docstring."""

from __future__ import annotations

import warnings
from itertools import chain
from math import prod

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

with warnings.catch_warnings():  # fvcore scripts its losses on import; torch deprecates that
    warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import elementwise_flop_counter, get_shape

from ...search_space import Spec
from ..graph.trace import inference, is_elementwise, record_forward
from ..graph.walk import ELEMENTWISE, UPSAMPLE
from ..model_input import Shape, as_model
from .analytic import ValueOp, peak_bytes


def _pool_flop_jit(inputs: list, outputs: list) -> int:
    """max_pool2d / avg_pool2d: one compare or add per window element, k x k per output."""
    kernel = [v.toIValue() for v in inputs[1].node().inputs()]
    return prod(get_shape(outputs[0])) * prod(kernel if len(kernel) == 2 else kernel * 2)


# fvcore's JIT trace names the element-wise and upsampling ops as the walk's tables do, in
# place or not; a handle of None tells fvcore the op is deliberately free. Batch norm keeps
# fvcore's own handle.
_HANDLES = {
    f"aten::{aten.rstrip('_')}{inplace}": elementwise_flop_counter(0, macs) if macs else None
    for rule, (aten, macs) in (ELEMENTWISE | UPSAMPLE).items()
    if rule != "batch_norm"
    for inplace in ("", "_")
}
_HANDLES.update({"aten::max_pool2d": _pool_flop_jit, "aten::avg_pool2d": _pool_flop_jit})


def flop_analysis(
    model_or_spec: nn.Module | Spec, input_shape: Shape | None = None
) -> FlopCountAnalysis:
    """fvcore's analysis with the rules above, already run (eval mode, zero input), for
    breakdowns by module or operator; fvcore's warnings are off (see :mod:`.analytic`)."""
    model, shape = as_model(model_or_spec, input_shape)
    analysis = (
        FlopCountAnalysis(model, torch.zeros(shape))
        .set_op_handle(**_HANDLES)
        .unsupported_ops_warnings(False)
        .uncalled_modules_warnings(False)
    )
    with inference(model):
        analysis.total()  # traces now, in eval mode; the analysis keeps the results
    return analysis


def fvcore_cost(
    model_or_spec: nn.Module | Spec, input_shape: Shape | None = None
) -> dict[str, int]:
    """``{"params", "macs"}`` of the built model, MACs traced by fvcore."""
    model, shape = as_model(model_or_spec, input_shape)
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "macs": int(flop_analysis(model, shape).total()),
    }


def peak_activation_bytes(model_or_spec: nn.Module | Spec, input_shape: Shape | None = None) -> int:
    """Peak activation bytes of one forward pass of the real module, read from its aten ops
    (eval mode, zero input; the model of :mod:`.analytic`'s docstring)."""
    model, shape = as_model(model_or_spec, input_shape)
    log = _StorageLog({_storage(t) for t in chain(model.parameters(), model.buffers())})
    record_forward(model, shape, log)
    return peak_bytes(log.sizes, log.ops, log.outputs)


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


class _StorageLog:
    """Logs a forward pass as ops (:data:`.analytic.ValueOp`). A value is the tensor in one
    storage: an op's
    output in a storage it also reads (a view, an in-place op) is that same value, so
    storages freed and reused by the allocator are told apart. Weights are left out."""

    def __init__(self, weights: set[int]):
        self.weights = weights
        self.values: dict[int, int] = {}  # storage -> the value now in it
        self.sizes: list[int] = []
        self.ops: list[ValueOp] = []
        self.outputs: list[int] = []

    def input(self, x: torch.Tensor) -> None:
        self.values[_storage(x)] = 0
        self.sizes.append(x.untyped_storage().nbytes())

    def op(self, func, args: tuple, kwargs: dict, out, module: str) -> None:
        read = dict.fromkeys(
            _storage(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)
        )
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
        self.outputs = [
            self.values[_storage(t)] for t in tree_leaves(y) if isinstance(t, torch.Tensor)
        ]
