"""The network a set of proxies scores, and the passes they share (each run once)."""

from __future__ import annotations

from copy import deepcopy

import torch
from torch import Tensor, nn

from ...errors import AttendSearchError
from ..model_input import Shape
from .activation_codes import code_kernel
from .gradients import weight_grads
from .modules import NORMS
from .synaptic_flow import synflow

Batch = tuple[Tensor, Tensor]


class Probe:
    """The network to score (a scratch copy, see :func:`scratch`), the input shape and batch,
    and the proxies asked for: a pass that several of them share runs once."""

    def __init__(
        self,
        model: nn.Module,
        shape: Shape,
        batch: Batch | None,
        names: list[str],
        examples: Tensor,
    ):
        self.model, self.shape, self.batch, self.names = model, shape, batch, names
        self.examples = examples  # the ensemble's expressivity forward
        self._full: tuple[Tensor, list[tuple[Tensor, Tensor]]] | None = None
        self._synflow: float | None = None
        self.cache: dict[str, object] = {}  # what a proxy computes for others (its signals)

    def synflow(self) -> float:
        """Synflow, once: it rewrites the network, so every other pass must come first."""
        if self._synflow is None:
            self._synflow = synflow(self.model, self.shape)
        return self._synflow

    def full_batch(self) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """naswot's kernel and the weight gradients on the whole batch, from one forward: the
        kernel if naswot is asked for, the gradients if grad_norm or snip is."""
        if self._full is None:
            inputs, targets = self.batch
            kernel, hooks = (
                code_kernel(self.model, len(inputs))
                if "naswot" in self.names
                else (torch.zeros(0, 0), [])
            )
            grads = bool({"grad_norm", "snip"} & set(self.names))
            with torch.set_grad_enabled(grads):
                logits = self.model(inputs)
            for hook in hooks:
                hook.remove()
            self._full = kernel, weight_grads(self.model, logits, targets) if grads else []
        return self._full


def scratch(model: nn.Module, copy: bool) -> nn.Module:
    """The network to score (``model`` itself, or a copy): every weight trainable, batch norm on
    batch statistics, dropout off."""
    scratch = deepcopy(model) if copy else model
    scratch.requires_grad_(True).eval()
    for m in scratch.modules():
        if isinstance(m, NORMS):
            m.train()
    return scratch


def check_batch(batch: Batch) -> None:
    if not (
        isinstance(batch, (tuple, list))
        and len(batch) == 2
        and all(isinstance(t, Tensor) for t in batch)
    ):
        raise AttendSearchError("batch must be a pair (inputs, targets) of tensors")
    inputs, targets = batch
    if inputs.ndim < 2 or len(inputs) < 2 or len(targets) != len(inputs):
        raise AttendSearchError(
            f"batch needs at least 2 inputs and one target per input, got "
            f"inputs {tuple(inputs.shape)}, targets {tuple(targets.shape)}"
        )


def output_width(scratch: nn.Module, shape: Shape) -> int:
    """The width of a scratch network's output, from two examples (batch statistics)."""
    device = next(scratch.parameters()).device
    with torch.no_grad():
        return scratch(torch.zeros((2, *shape[1:]), device=device)).shape[-1]


def synthetic(shape: Shape, n: int, num_classes: int, seed: int) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn((n, *shape[1:]), generator=generator)
    return inputs, torch.randint(num_classes, (n,), generator=generator)
