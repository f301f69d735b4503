"""AZ-NAS's expressivity and progressivity (Lee and Ham, CVPR 2024): the entropy of the
features' channel covariance, block by block, at initialisation."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import torch
from torch import Tensor, nn

from ...search_space import Backbone
from ...search_space.blocks import Columns


def feature_entropies(model: nn.Module, inputs: Tensor) -> list[list[float]]:
    """Per stage, the entropy of every block's output features, from one forward of ``inputs``
    (a :class:`Backbone`'s blocks, a stage of columns as one; any other module's direct
    children, one stage each). A block's entropy is that of the normalised eigenvalues of
    the channel covariance over all examples and positions (AZ-NAS's isotropy): high when
    the features use many directions evenly, 0 when one dominates or all are zero."""
    entropies, hooks = entropy_hooks(model)
    with torch.no_grad():  # channels-last: convolutions 1.3-1.7x faster on CPU, as in synflow
        model(inputs.contiguous(memory_format=torch.channels_last) if inputs.ndim == 4 else inputs)
    for h in hooks:
        h.remove()
    return [e for e in entropies if e]


def entropy_hooks(model: nn.Module) -> tuple[list[list[float]], list]:
    """:func:`feature_entropies`' lists, filled by the forward hooks returned with them as the
    model runs (so that other passes can share the forward)."""
    if isinstance(model, Backbone):
        stages = [[stage] if isinstance(stage, Columns) else list(stage) for stage in model.stages]
    else:
        stages = [[child] for child in model.children()]
    entropies: list[list[float]] = [[] for _ in stages]

    def hook(into: list[float]) -> Callable:
        def entropy(module: nn.Module, args: tuple, y: Tensor) -> None:
            if y.ndim != 4:
                return
            f = y.detach().transpose(0, 1).flatten(1).double()
            f = f - f.mean(1, keepdim=True)
            # the covariance's nonzero eigenvalues are the Gram matrix's: take the smaller one
            eig = torch.linalg.eigvalsh(f @ f.T if len(f) <= f.shape[1] else f.T @ f).clamp(min=0)
            p = eig[eig > 0] / eig.sum()
            into.append(float(-(p * p.log()).sum()))

        return entropy

    hooks = [
        block.register_forward_hook(hook(into))
        for blocks, into in zip(stages, entropies)
        for block in blocks
    ]
    return entropies, hooks


def expressivity_signals(model: nn.Module, inputs: Tensor) -> dict[str, float]:
    """AZ-NAS's expressivity (the entropies of the stages' outputs, summed) and progressivity
    (the smallest change of entropy from one block to the next: negative where a block
    collapses the features), from :func:`feature_entropies`."""
    return expressivity_of(feature_entropies(model, inputs))


def expressivity_of(stages: list[list[float]]) -> dict[str, float]:
    """:func:`expressivity_signals` from the entropies of each stage's blocks."""
    stages = [e for e in stages if e]
    blocks = [e for stage in stages for e in stage]
    return {
        "expressivity": sum(stage[-1] for stage in stages),
        "progressivity": min((b - a for a, b in pairwise(blocks)), default=0.0),
    }
