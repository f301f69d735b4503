"""A layer table of a built network: the rows ``attend-search build`` prints."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .builder import build_model, input_shape
from .naming import module_path
from .spec import Spec


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int


def _parts(model: nn.Module, spec: Spec) -> list[tuple[str, str, nn.Module]]:
    """The rows: stem, every block (per column), the head layers."""
    parts = [("stem", f"conv{spec.stem.kernel}x{spec.stem.kernel}", model.stem)]
    for layout in spec.blocks():
        module = model.get_submodule(module_path(layout.path))
        parts.append((layout.path, layout.block.type, module))
    head = "conv1x1" if spec.head.channels else "bn+act"  # head.norm: batch norm, activation
    parts += [
        ("head.conv", head, model.head_conv),
        ("head.pool", "avgpool", model.pool),
        ("head.classifier", "linear", model.classifier),
    ]
    return [p for p in parts if not isinstance(p[2], nn.Identity)]


def layer_table(spec: Spec) -> list[LayerRow]:
    model = build_model(spec).eval()
    parts = _parts(model, spec)
    shapes: dict[int, tuple[int, ...]] = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, i=i: shapes.__setitem__(i, tuple(out.shape)))
        for i, (_, _, m) in enumerate(parts)
    ]
    with torch.no_grad():
        model(torch.zeros(input_shape(spec)))
    for hook in hooks:
        hook.remove()
    return [
        LayerRow(name, kind, shapes[i], sum(p.numel() for p in m.parameters()))
        for i, (name, kind, m) in enumerate(parts)
    ]
