"""One inference forward of a module, handed op by op (ATen level) to a log.

The traced evaluators (peak activation memory in :mod:`.cost`, runtime kernels in
:mod:`.kernels`) read the same forward pass and differ only in what they keep of each op, so
they share this recorder and its inference context; each brings an :class:`OpLog`.

A ``TorchDispatchMode`` sees every ATen op with real shapes, for any ``nn.Module`` built from
standard layers, including code that reads shapes at run time (``F.interpolate(size=...)``),
which ``torch.fx`` symbolic tracing cannot follow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .model_input import Shape


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
    x = torch.zeros(shape, dtype=param.dtype if param is not None else torch.float32,
                    device=param.device if param is not None else "cpu")
    with inference(model), _module_names(model) as stack:
        log.input(x)
        with _Recorder(log, stack):
            y = model(x)
        log.output(y)


@contextmanager
def inference(model: nn.Module) -> Iterator[None]:
    """Eval mode, no autograd, one thread, for a pass that only reads shapes and dataflow:
    a batch-1 pass gains nothing from more threads, and threads contending with other work
    on a small shared machine make it many times slower."""
    with eval_mode(model), torch.no_grad(), torch_threads(1):
        yield


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
        return lambda *_: stack.append(name)       # returns None: leaves the input alone

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
