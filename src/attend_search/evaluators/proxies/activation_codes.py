"""``naswot``: how differently the examples of a batch switch the network's activations."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...errors import AttendSearchError
from .modules import ACTIVATIONS


def naswot(kernel: Tensor) -> float:
    """log |K_H| of the activation codes' agreement kernel (Mellor et al. 2021, eq. 2)."""
    return float(torch.linalg.slogdet(kernel).logabsdet)


def code_kernel(model: nn.Module, n: int) -> tuple[Tensor, list]:
    """naswot's kernel, filled by the forward hooks returned with it as a batch of ``n`` runs."""
    device = next(model.parameters()).device
    kernel = torch.zeros(n, n, dtype=torch.float64, device=device)

    def add_codes(module: nn.Module, args: tuple, output: Tensor) -> None:
        codes = (output > 0).flatten(1).float()  # exact: counts stay below 2**24
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    hooks = [
        m.register_forward_hook(add_codes) for m in model.modules() if isinstance(m, ACTIVATIONS)
    ]
    if not hooks:
        raise AttendSearchError(
            "naswot and ensemble need ReLU, ReLU6, Hardswish or SiLU modules; the model has none"
        )
    return kernel, hooks
