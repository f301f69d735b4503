"""One inference forward of a module, handed op by op (ATen level) to a log.

The traced evaluators (peak activation memory in :mod:`..cost.analytic`, runtime kernels in
:mod:`..latency.kernels`) read the same forward pass and differ only in what they keep of each
op, so
they share this recorder and its inference context; each brings an :class:`OpLog`.

A ``TorchDispatchMode`` sees every ATen op with real shapes, for any ``nn.Module`` built from
standard layers, including code that reads shapes at run time (``F.interpolate(size=...)``),
which ``torch.fx`` symbolic tracing cannot follow.

Attention runs in the form an exported model has. ``torch.export`` (behind the ONNX export)
traces ``nn.MultiheadAttention`` on its Python path and ``scaled_dot_product_attention`` as
its math decomposition, so the pass does too: the MHA fast path is off and SDPA uses the
math backend, and the log sees the projections, batched matmuls and softmax that a runtime
runs rather than one fused ``_native_multi_head_attention`` op. ``TransformerEncoderLayer``'s
own fast path (``_transformer_encoder_layer_fwd``) never runs here: it refuses modules with
hooks, and the pass hooks every module to name it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode

from ..model_input import Shape


class OpLog(Protocol):
    """What a traced evaluator keeps of a forward pass."""

    def input(self, x: torch.Tensor) -> None: ...

    def op(self, func: Any, args: tuple, kwargs: dict, out: Any, module: str) -> None:
        """``func`` has run on ``args``/``kwargs`` giving ``out``, inside ``module``."""

    def output(self, y: Any) -> None: ...


def record_forward(model: nn.Module, shape: Shape, log: OpLog) -> None:
    """One forward of a zero batch of ``shape`` in :func:`inference` mode, every ATen op
    handed to ``log`` with the name of the module running it."""
    param = next(model.parameters(), None)
    x = torch.zeros(
        shape,
        dtype=param.dtype if param is not None else torch.float32,
        device=param.device if param is not None else "cpu",
    )
    with inference(model), _module_names(model) as stack:
        log.input(x)
        with _Recorder(log, stack):
            y = model(x)
        log.output(y)


# Element-wise by definition, but not tagged pointwise in aten.
_UNTAGGED_ELEMENTWISE = {
    "hardswish",
    "hardswish_",
    "native_batch_norm",
    "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit",
}


def is_elementwise(func: Any) -> bool:
    """Does the ATen op ``func`` compute each output element from the same element of its
    inputs (activations, gates, eval batch norm, arithmetic, copies)?"""
    return torch.Tag.pointwise in func.tags or func.overloadpacket.__name__ in _UNTAGGED_ELEMENTWISE


@contextmanager
def inference(model: nn.Module) -> Iterator[None]:
    """Eval mode, no autograd, one thread, attention as exported (module docstring), for a
    pass that only reads shapes and dataflow: a batch-1 pass gains nothing from more threads,
    and threads contending with other work on a small shared machine make it many times
    slower."""
    with eval_mode(model), torch.no_grad(), torch_threads(1), _exported_attention():
        yield


@contextmanager
def _exported_attention() -> Iterator[None]:
    """The MHA fast path off and SDPA's math backend on, for a block; then as before."""
    fast_path = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fast_path)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode for a block; each module's own train/eval flag is restored."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """PyTorch's intra-op thread count set for a block, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Recorder(TorchDispatchMode):
    def __init__(self, log: OpLog, modules: list[str]):
        super().__init__()
        self.log = log
        self.modules = modules

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.log.op(func, args, kwargs, out, self.modules[-1])
        return out


@contextmanager
def _module_names(model: nn.Module) -> Iterator[list[str]]:
    """A stack whose top is the name of the module running now (hooks on every module)."""
    stack = ["(model)"]

    def enter(name: str):
        return lambda *_: stack.append(name)  # returns None: leaves the input alone

    def leave(*_) -> None:
        stack.pop()

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(name or "(model)")))
        handles.append(module.register_forward_hook(leave))
    try:
        yield stack
    finally:
        for handle in handles:
            handle.remove()
