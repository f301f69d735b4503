"""Short training: top-1 validation accuracy after a few epochs, a ranking signal for search.

A few epochs on a small dataset do not measure the accuracy a network would reach; they are
a cheap stand-in (seconds to minutes on a CPU) for ranking candidates against each other.
The recipe is chosen to make progress in few steps from scratch on any network of the space:
AdamW (learning rate 5e-3, weight decay 0.05), a one-cycle schedule stepped per batch (a
cosine rise from lr/25 over the first 25% of steps, then cosine annealing to nearly zero;
Smith & Topin 2019), label smoothing 0.1, inputs standardised per channel with the training
split's mean and deviation. Before each evaluation the batch-norm statistics are re-estimated
on a few training batches with the current weights ("precise BN", Wu & Johnson 2021): the
running averages lag far behind weights that move this fast, and scored near chance without
it.
Everything random (weights, shuffling, dropout) follows ``seed``, so a run on the CPU is
reproducible.

A spec is adapted to the data: it is rebuilt with the dataset's class count, and images are
resized to ``input_size`` (default: the spec's) and given the spec's channels (grayscale
repeated, colour averaged). A module is trained as it is: it must already fit the data (its
classifier as wide as the classes, its input the dataset's channels; images are resized only
when ``input_size`` is given). Either way the caller's model is left untouched: training works
on a fresh build or a copy.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ...errors import AttendSearchError
from ...search_space import Spec
from ..model_input import seeded
from .datasets import Dataset, adapt_images, load_dataset
from .loop import device_of, epoch_batches, evaluate, fit, precise_bn, train_epoch

Callback = Callable[[int, float], None]


def train_eval(
    model_or_spec: nn.Module | Spec,
    dataset: Dataset | str | Path,
    epochs: int,
    *,
    batch_size: int = 64,
    lr: float = 5e-3,
    weight_decay: float = 0.05,
    label_smoothing: float = 0.1,
    device: str = "cpu",
    seed: int = 0,
    callback: Callback | None = None,
    progress: bool | None = None,
    input_size: int | None = None,
) -> float:
    """Train for ``epochs`` and return the top-1 accuracy (0..1) on the validation split.

    ``dataset`` is a :class:`Dataset` or anything :func:`load_dataset` reads (``"digits"``, a
    ``.npz`` file, a class-folder tree). ``callback(epoch, accuracy)`` runs after each epoch
    (``epoch`` counts from 0), as Optuna's ``trial.report``; an exception it raises (say
    ``optuna.TrialPruned``) ends training and propagates. ``progress`` shows a bar (default:
    when stderr is a terminal). The value returned is the last epoch's accuracy.
    """
    if epochs < 1 or batch_size < 1:
        raise AttendSearchError(
            f"epochs and batch_size must be 1 or more, got {epochs} and {batch_size}"
        )
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    target = device_of(device)
    mean = data.x_train.mean((0, 2, 3), keepdim=True).to(target)
    std = data.x_train.std((0, 2, 3), keepdim=True).clamp_min(1e-6).to(target)
    with seeded(seed):
        model, spec, size = fit(model_or_spec, data, input_size)
        channels = spec.in_channels if spec else None
        model.to(target)

        def prepare(x: Tensor) -> Tensor:
            return adapt_images((x.to(target) - mean) / std, channels, size)

        steps = max(1, len(data.y_train) // batch_size)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=epochs * steps, pct_start=0.25
        )
        generator = torch.Generator().manual_seed(seed)
        show = sys.stderr.isatty() if progress is None else progress
        with tqdm(
            total=epochs * steps,
            disable=not show,
            unit="step",
            leave=False,
            desc=f"training {data.name}",
        ) as bar:
            for epoch in range(epochs):
                batches = epoch_batches(len(data.y_train), batch_size, generator)
                train_epoch(
                    model, data, batches, prepare, optimizer, schedule, label_smoothing, bar, epoch
                )
                precise_bn(model, data.x_train, batches, prepare)
                accuracy = evaluate(model, data.x_val, data.y_val, prepare, batch_size)["top1"]
                bar.set_postfix(epoch=epoch, val_acc=f"{accuracy:.3f}")
                if callback is not None:
                    callback(epoch, accuracy)
    return accuracy
