"""The module kinds the proxies treat apart, and the weights they score."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
GATES = (nn.Sigmoid, nn.Hardsigmoid)


def weights(model: nn.Module) -> list[Tensor]:
    """The weights the papers score: those of convolution and linear layers."""
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def swap(
    modules: list[nn.Module], types: tuple[type, ...], make: Callable[[nn.Module], nn.Module]
) -> None:
    """Replace every child of ``modules`` of one of ``types`` by ``make(it)``, in place."""
    for parent in modules:
        for name, child in parent.named_children():
            if isinstance(child, types):
                setattr(parent, name, make(child))
