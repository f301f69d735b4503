"""Pieces both training loops share: the short-training evaluator and the full recipe.

Choosing the device, fitting a network to the data, drawing the batches of an epoch,
re-estimating batch-norm statistics and scoring the validation split are the same whether a
network trains for two epochs to be ranked or for two hundred to be deployed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import update_bn
from tqdm.auto import tqdm

from ...errors import AttendSearchError
from ...search_space import Spec, build_model
from .datasets import Dataset

Prepare = Callable[[Tensor], Tensor]
BN_BATCHES = 10  # training batches that re-estimate batch-norm statistics before evaluation


def device_of(name: str) -> torch.device:
    """``name`` as a torch device, refused with a clear message when it is unknown or absent."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AttendSearchError(f"unknown device {name!r}; use 'cpu' or 'cuda'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise AttendSearchError("device 'cuda' was asked for, but CUDA is not available")
    return device


def fit(
    model_or_spec: nn.Module | Spec, data: Dataset, input_size: int | None
) -> tuple[nn.Module, Spec | None, int | None]:
    """The network to train, the spec it was built from (None for a module) and the image size
    it needs (None: as they are).

    A spec is rebuilt with the dataset's class count and ``input_size`` (default: its own); a
    module is deep-copied, so the caller's is never trained.
    """
    if isinstance(model_or_spec, Spec):
        spec = replace(
            model_or_spec,
            num_classes=data.num_classes,
            input_size=input_size or model_or_spec.input_size,
        )
        return build_model(spec), spec, spec.input_size
    if not isinstance(model_or_spec, nn.Module):
        raise AttendSearchError(
            f"expected a Spec or torch.nn.Module, got {type(model_or_spec).__name__}"
        )
    return copy.deepcopy(model_or_spec), None, input_size


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> Tensor:
    """A shuffled epoch as ``(steps, batch_size)`` indices: whole batches only (batch norm
    needs more than one example), at least one."""
    steps = max(1, n // batch_size)
    return torch.randperm(n, generator=generator)[: steps * batch_size].view(steps, -1)


def precise_bn(model: nn.Module, x: Tensor, batches: Tensor, prepare: Prepare) -> None:
    """Re-estimate batch-norm statistics on the first :data:`BN_BATCHES` of ``batches``
    ("precise BN", Wu & Johnson 2021): running averages lag behind fast-moving weights."""
    update_bn((prepare(x[index]) for index in batches[:BN_BATCHES]), model)


@torch.no_grad()
def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, prepare: Prepare, batch_size: int
) -> dict[str, float]:
    """Loss, top-1 and top-5 accuracy (0..1; top-5 is top-k for fewer than 5 classes) of
    ``model`` in eval mode on images ``x`` (mapped by ``prepare``) and labels ``y``."""
    model.eval()
    loss = top1 = top5 = 0.0
    for start in range(0, len(y), batch_size):
        logits = model(prepare(x[start : start + batch_size])).float()
        labels = y[start : start + batch_size].to(logits.device)
        loss += float(F.cross_entropy(logits, labels, reduction="sum"))
        ranked = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = ranked == labels[:, None]
        top1 += int(hits[:, 0].sum())
        top5 += int(hits.any(1).sum())
    return {"loss": loss / len(y), "top1": top1 / len(y), "top5": top5 / len(y)}


def train_epoch(
    model: nn.Module,
    data: Dataset,
    batches: Tensor,
    prepare: Prepare,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    label_smoothing: float,
    bar: tqdm,
    epoch: int,
    scaler: torch.amp.GradScaler | None = None,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
) -> float:
    """One epoch of training over ``batches`` of ``data``'s training split; the mean loss.
    ``scaler`` and ``autocast``: mixed precision (the full recipe on CUDA)."""
    scaler = scaler or torch.amp.GradScaler("cuda", enabled=False)
    model.train()
    target = next(model.parameters()).device
    total = torch.zeros((), device=target)
    for step, index in enumerate(batches):
        with autocast():
            logits = model(prepare(data.x_train[index]))
            loss = F.cross_entropy(
                logits.float(), data.y_train[index].to(target), label_smoothing=label_smoothing
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        total += loss.detach()
        bar.update()
        if step % 20 == 0:  # .item() waits for the device: not every step
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
    return float(total) / len(batches)
