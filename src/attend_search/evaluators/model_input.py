"""Evaluators accept a Spec or any ``nn.Module`` with an input shape: normalise to the latter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import AttendSearchError
from ..search_space import Spec, build_model, input_shape

Shape = tuple[int, ...]


def as_model(
    model_or_spec: nn.Module | Spec, shape: Shape | None = None
) -> tuple[nn.Module, Shape]:
    """``(module, input shape)``; a spec is built, and gives its own shape (batch 1) by default."""
    if isinstance(model_or_spec, Spec):
        return build_model(model_or_spec), tuple(shape or input_shape(model_or_spec))
    if not isinstance(model_or_spec, nn.Module):
        raise AttendSearchError(
            f"expected a Spec or torch.nn.Module, got {type(model_or_spec).__name__}"
        )
    if shape is None:
        raise AttendSearchError("an input shape is needed for a module that is not a Spec")
    return model_or_spec, tuple(shape)


TRAINED_CONSTANT = 0.75  # any value but 0 and 1: what a measured spec's constants become


def as_measured(
    model_or_spec: nn.Module | Spec, shape: Shape | None = None
) -> tuple[nn.Module, Shape]:
    """:func:`as_model` for timing: a built spec's parameters and statistics that start as a
    constant (the attention condenser's learned scale of one, a batch norm's weight, bias,
    mean and variance) are set to 0.75, off it, as training moves them. A converter drops a
    multiply by one or an add of zero, and on x86 onnxruntime the layout changes around it;
    a trained network keeps them, and so its latency is what timing an untrained spec
    should tell. A module is timed as given."""
    model, shape = as_model(model_or_spec, shape)
    if isinstance(model_or_spec, Spec):
        with torch.no_grad():
            for t in (*model.parameters(), *model.buffers()):
                if t.is_floating_point() and t.numel() and bool((t == t.flatten()[0]).all()):
                    t.fill_(TRAINED_CONSTANT)
    return model, shape


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run with torch's global generator seeded (weight init, dropout); the caller's is restored."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield
