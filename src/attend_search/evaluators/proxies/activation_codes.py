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
        # 1 where positive, else 0: one pass (sign) where the output is never negative
        codes = torch.sign(_rows(output.detach()).float())  # float32 counts: exact
        if not isinstance(module, (nn.ReLU, nn.ReLU6)):
            codes.clamp_(min=0)
        # units agreeing on 1 plus on 0, c c' + (1-c)(1-c)', from one product: with s the
        # diagonal of c c' (each example's count of 1s), 2 c c' - s - s' + N
        both = (codes @ codes.T).double()  # exact: counts stay below 2**24
        ones = both.diagonal()
        kernel.add_(2 * both - ones[:, None] - ones[None, :] + codes.shape[1])

    hooks = [
        m.register_forward_hook(add_codes) for m in model.modules() if isinstance(m, ACTIVATIONS)
    ]
    if not hooks:
        raise AttendSearchError(
            "naswot and ensemble need ReLU, ReLU6, Hardswish or SiLU modules; the model has none"
        )
    return kernel, hooks


def _rows(output: Tensor) -> Tensor:
    """One row of units an example, in memory order: a view of a channels-last output (what
    the ensemble's forward gives), where ``flatten`` would copy it."""
    if output.ndim == 4 and output.is_contiguous(memory_format=torch.channels_last):
        output = output.permute(0, 2, 3, 1)
    return output.reshape(len(output), -1)
