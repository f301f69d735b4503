"""Expressivity, after AZ-NAS (Lee and Ham, CVPR 2024): the entropy of the features' channel
covariance, block by block, at initialisation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...search_space import Backbone
from ...search_space.blocks import Columns


def entropy_hooks(model: nn.Module) -> tuple[list[float], list]:
    """The entropy of every block's output features, filled by the forward hooks returned with
    the list as the model runs (so that other signals share the forward).

    Blocks are a :class:`Backbone`'s (a stage of columns as one), or any other module's
    :func:`blocks`. A block's entropy is that of the normalised eigenvalues of the channel
    covariance over all examples and positions (AZ-NAS's isotropy): high when the features
    use many directions evenly, 0 when one dominates or all are zero."""
    entropies: list[float] = []

    def entropy(module: nn.Module, args: tuple, y: Tensor) -> None:
        if not isinstance(y, Tensor) or y.ndim != 4:
            return
        # positions x channels: a view of a channels-last output (the ensemble's forward)
        f = y.detach().permute(0, 2, 3, 1).reshape(-1, y.shape[1]).double()
        f = f - f.mean(0)
        # the covariance's nonzero eigenvalues are the Gram matrix's: take the smaller one
        eig = torch.linalg.eigvalsh(f.T @ f if f.shape[1] <= len(f) else f @ f.T).clamp(min=0)
        p = eig[eig > 0] / eig.sum()
        entropies.append(float(-(p * p.log()).sum()))

    return entropies, [block.register_forward_hook(entropy) for block in blocks(model)]


def blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks of a network: a :class:`Backbone`'s stages' blocks (a stage of columns as
    one); in any other module, the modules made of layers found among its children, where a
    plain container (``Sequential``, ``ModuleList``, ``ModuleDict``) stands for its own
    children, so that the blocks of a network written outside the toolkit are found as they
    are in ours (single layers, a stem's convolution or a head's pooling, are not blocks,
    unless the network has nothing else)."""
    if isinstance(model, Backbone):
        return [
            block
            for stage in model.stages
            for block in ([stage] if isinstance(stage, Columns) else stage)
        ]
    children = _unpacked(model)
    return [m for m in children if next(m.children(), None) is not None] or children


def _unpacked(model: nn.Module) -> list[nn.Module]:
    found = []
    for child in model.children():
        plain = type(child) in (nn.Sequential, nn.ModuleList, nn.ModuleDict)
        found += _unpacked(child) if plain else [child]
    return found


def expressivity_of(entropies: list[float]) -> float:
    """The mean entropy of the blocks; 0 without blocks."""
    return sum(entropies) / len(entropies) if entropies else 0.0
