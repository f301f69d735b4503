"""PyTorch eager as a runtime: the network as it is, no file."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from ..graph.trace import eval_mode
from . import Session


@contextlib.contextmanager
def torch_session(model: nn.Module, x: torch.Tensor, threads: int, keep: Path | None) -> Session:
    """PyTorch eager: no file to keep (``keep`` is ignored)."""
    with eval_mode(model), torch.inference_mode():
        yield (lambda: model(x)), None
