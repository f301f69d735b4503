"""Proxies from the loss's weight gradients: ``grad_norm``, ``snip`` and ``zico``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import AttendSearchError
from .modules import weights


def grad_norm(grads: list[tuple[Tensor, Tensor]]) -> float:
    """Sum over layers of ``||dL/dW||_2`` (Abdelfattah et al. 2021)."""
    return sum(float(g.norm()) for _, g in grads)


def snip(grads: list[tuple[Tensor, Tensor]]) -> float:
    """``sum |W * dL/dW|`` over layers (Lee et al. 2019, as a proxy in Abdelfattah et al. 2021)."""
    return sum(float((w * g).abs().sum()) for w, g in grads)


def zico(model: nn.Module, inputs: Tensor, targets: Tensor) -> float:
    """ZiCo (Li et al. 2023): sum over layers of log sum(mean |g| / std g) over two half-batches."""
    if len(inputs) < 4:
        raise AttendSearchError(
            f"zico needs a batch of at least 4 examples (two halves with batch "
            f"statistics), got {len(inputs)}"
        )
    halves = [
        [g.double() for _, g in weight_grads(model, model(x), y)]
        for x, y in zip(inputs.chunk(2), targets.chunk(2))
    ]
    score = 0.0
    for g1, g2 in zip(*halves):
        # of two values, mean |g| = (|g1| + |g2|) / 2 and std g = |g1 - g2| / 2 (far faster
        # than a std over a stacked pair, a strided reduction)
        spread = (g1 - g2).abs()
        ratio = float(torch.where(spread > 0, (g1.abs() + g2.abs()) / spread, 0).sum())
        if ratio > 0:
            score += math.log(ratio)
    return score


def weight_grads(model: nn.Module, logits: Tensor, targets: Tensor) -> list[tuple[Tensor, Tensor]]:
    """``(weight, dL/dweight)`` of the cross-entropy loss of ``logits``, for scored weights."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(logits, targets).backward()
    return [(w.detach(), w.grad) for w in weights(model) if w.grad is not None]
