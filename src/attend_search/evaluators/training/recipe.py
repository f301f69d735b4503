"""Full training of one architecture: the recipe that turns a search's winner into a model.

Unlike :func:`.short.train_eval` (a few epochs to rank candidates), this trains to deploy:
SGD with Nesterov momentum or AdamW, no weight decay on biases and norm parameters, a linear
warm-up then cosine annealing stepped per batch (Goyal et al. 2017; Loshchilov & Hutter 2017),
label smoothing, augmentation (:mod:`.augment`), batch-norm statistics re-estimated before each
validation, top-1 and top-5 on the validation split after every epoch. Images go in as they
are, pixels in 0..1, with no mean and deviation to subtract: the stem's batch norm learns that
shift and scale, and the trained network takes what an export promises (pixels in 0..1),
with nothing to apply on the device. On CUDA it runs in
mixed precision (float16 autocast with a gradient scaler) and channels-last memory layout.

Training can stop after any epoch and resume from the state :func:`train` hands to
``on_epoch`` (weights, optimizer, schedule, scaler, every random generator, the log): resumed
on the same device it goes on bit for bit as if it had never stopped. The state carries the
run's identity (the spec's digest, the recipe, the data's shape and labels), and a state of
another run is refused. Reading and writing the state is the caller's (:mod:`..studies`).
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ...errors import AttendSearchError
from ...search_space import Spec
from ..model_input import seeded
from .augment import augment, check_augmentation
from .datasets import Dataset, adapt_images
from .loop import device_of, epoch_batches, evaluate, fit, precise_bn, train_epoch

# per optimizer: learning rate (at batch 128) and weight decay when not given
OPTIMIZERS = {"sgd": (0.1, 5e-5), "adamw": (2e-3, 0.05)}
MIN_LR = 1e-3  # the cosine ends at this fraction of the peak learning rate
WARMUP = 0.1  # default warm-up: this share of the epochs, at most 3 epochs
CHECKPOINT_FORMAT = "attend-search/checkpoint/v1"

State = dict[str, Any]


class CheckpointError(AttendSearchError):
    """A checkpoint that is not one, or is of another run (spec, recipe or data)."""


@dataclass(frozen=True)
class Recipe:
    """How to train; ``None`` fields take the optimizer's defaults (:meth:`resolved`)."""

    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9
    warmup_epochs: float | None = None
    label_smoothing: float = 0.1
    augment: str = "crop"
    hflip: float = 0.5
    input_size: int | None = None
    seed: int = 0

    def resolved(self) -> Recipe:
        """Checked, with every default filled in (the form a checkpoint records)."""
        if self.optimizer not in OPTIMIZERS:
            raise AttendSearchError(
                f"--optimizer: unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}"
            )
        check_augmentation(self.augment, self.hflip)
        for name in ("epochs", "batch_size", "input_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise AttendSearchError(
                    f"--{name.replace('_', '-')}: must be 1 or more, got {value}"
                )
        lr, decay = OPTIMIZERS[self.optimizer]
        warmup = self.warmup_epochs
        if warmup is None:
            warmup = round(min(3.0, WARMUP * self.epochs), 3)
        out = replace(
            self,
            lr=lr if self.lr is None else self.lr,
            warmup_epochs=warmup,
            weight_decay=decay if self.weight_decay is None else self.weight_decay,
        )
        checks = [
            ("lr", out.lr > 0, "must be above 0"),
            ("weight-decay", out.weight_decay >= 0, "must be 0 or more"),
            ("momentum", 0 <= out.momentum < 1, "must lie in 0..1 (1 excluded)"),
            (
                "warmup-epochs",
                0 <= warmup < out.epochs,
                f"must lie in 0..{out.epochs} (the epochs, excluded)",
            ),
            ("label-smoothing", 0 <= out.label_smoothing < 1, "must lie in 0..1"),
        ]
        for flag, ok, rule in checks:
            if not ok:
                raise AttendSearchError(
                    f"--{flag}: {rule}, got {getattr(out, flag.replace('-', '_'))}"
                )
        return out


@dataclass
class Trained:
    """A finished (or stopped) run: the model on the CPU in eval mode, the spec it was built
    from, the per-epoch log and whether all epochs ran."""

    model: nn.Module
    spec: Spec
    log: list[dict[str, float]]
    finished: bool


def identity(spec: Spec, data: Dataset, recipe: Recipe) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the spec, the recipe, the data."""
    labels = hashlib.sha256(data.y_train.numpy().tobytes() + data.y_val.numpy().tobytes())
    return {
        "spec": spec.digest,
        "recipe": asdict(recipe.resolved()),
        "data": {
            "name": data.name,
            "train": len(data.y_train),
            "val": len(data.y_val),
            "classes": data.num_classes,
            "image": list(data.x_train.shape[1:]),
            "labels": labels.hexdigest()[:16],
        },
    }


def train(
    spec: Spec,
    data: Dataset,
    recipe: Recipe,
    *,
    device: str = "cpu",
    amp: bool | None = None,
    channels_last: bool | None = None,
    state: State | None = None,
    on_epoch: Callable[[State], None] | None = None,
    stop_after: int | None = None,
    progress: bool | None = None,
) -> Trained:
    """Train ``spec`` (rebuilt for the data's classes and the recipe's input size) on ``data``.

    ``state`` resumes a run from what ``on_epoch(state)`` was given after an epoch.
    ``stop_after`` runs at most that many epochs in this call (then ``finished`` is False).
    ``amp`` and ``channels_last`` default to on for CUDA; ``progress`` shows a bar (default:
    when stderr is a terminal).
    """
    recipe = recipe.resolved()
    target = device_of(device)
    cuda = target.type == "cuda"
    amp = cuda if amp is None else amp
    if amp and not cuda:
        raise AttendSearchError("--amp: mixed precision is for --device cuda")
    memory = (
        torch.channels_last
        if (cuda if channels_last is None else channels_last)
        else torch.contiguous_format
    )
    with seeded(recipe.seed):
        model, spec, size = fit(spec, data, recipe.input_size)
        me = identity(spec, data, recipe)
        if state is not None:
            _check_state(state, me)
        model.to(target, memory_format=memory)
        channels = spec.in_channels
        generator = torch.Generator().manual_seed(recipe.seed)

        def prepare_train(x: Tensor) -> Tensor:
            x = augment(
                adapt_images(x.to(target), channels), size, recipe.augment, recipe.hflip, generator
            )
            return x.contiguous(memory_format=memory)

        def prepare_eval(x: Tensor) -> Tensor:
            return adapt_images(x.to(target), channels, size).contiguous(memory_format=memory)

        steps = max(1, len(data.y_train) // recipe.batch_size)
        optimizer = _optimizer(model, recipe)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, WarmupCosine(round(recipe.warmup_epochs * steps), recipe.epochs * steps)
        )
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if amp else nullcontext
        log: list[dict[str, float]] = []
        start = 0
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["scheduler"])
            if state["scaler"] and amp:  # empty from a run without mixed precision
                scaler.load_state_dict(state["scaler"])
            generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            if cuda and state["cuda_rng"]:
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            log, start = list(state["log"]), state["epoch"]
        end = recipe.epochs if stop_after is None else min(recipe.epochs, start + stop_after)
        show = sys.stderr.isatty() if progress is None else progress
        with tqdm(
            total=(end - start) * steps,
            disable=not show,
            unit="step",
            leave=False,
            desc=f"training {spec.name or spec.digest}",
        ) as bar:
            for epoch in range(start, end):
                began = time.perf_counter()
                batches = epoch_batches(len(data.y_train), recipe.batch_size, generator)
                loss = train_epoch(
                    model,
                    data,
                    batches,
                    prepare_train,
                    optimizer,
                    schedule,
                    recipe.label_smoothing,
                    bar,
                    epoch,
                    scaler,
                    autocast,
                )
                with autocast():
                    precise_bn(model, data.x_train, batches, prepare_eval)
                    scores = evaluate(
                        model, data.x_val, data.y_val, prepare_eval, recipe.batch_size
                    )
                log.append(
                    {
                        "epoch": epoch + 1,
                        "lr": optimizer.param_groups[0]["lr"],
                        "train_loss": loss,
                        **{f"val_{k}": v for k, v in scores.items()},
                        "seconds": time.perf_counter() - began,
                    }
                )
                bar.set_postfix(epoch=epoch + 1, top1=f"{scores['top1']:.3f}")
                if on_epoch is not None:
                    on_epoch(
                        {
                            "format": CHECKPOINT_FORMAT,
                            "identity": me,
                            "epoch": epoch + 1,
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": schedule.state_dict(),
                            "scaler": scaler.state_dict(),
                            "generator": generator.get_state(),
                            "torch_rng": torch.get_rng_state(),
                            "cuda_rng": torch.cuda.get_rng_state_all() if cuda else [],
                            "log": log,
                        }
                    )
    model = model.to("cpu", memory_format=torch.contiguous_format).eval()
    return Trained(model, spec, log, finished=end == recipe.epochs)


class WarmupCosine:
    """Learning-rate factor at a step: linear warm-up from 1/``warmup`` of the peak over
    ``warmup`` steps, then cosine annealing to :data:`MIN_LR` of it at ``total``.

    A class, not a closure: ``LambdaLR`` saves its attributes in the checkpoint."""

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return MIN_LR + (1 - MIN_LR) * 0.5 * (1 + math.cos(math.pi * progress))


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW; weight decay on weight matrices and kernels only."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    plain = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": recipe.weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.momentum > 0
        )
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=(recipe.momentum, 0.999))


def _check_state(state: State, me: dict[str, Any]) -> None:
    """Refuse a checkpoint of another run, naming what differs."""
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"not an attend-search checkpoint ({CHECKPOINT_FORMAT})")
    theirs = state["identity"]
    if theirs["spec"] != me["spec"]:
        raise CheckpointError(
            f"the checkpoint is of another architecture (spec digest "
            f"{theirs['spec']}, this one is {me['spec']})"
        )
    for part in ("recipe", "data"):
        differ = [
            f"{k} {theirs[part].get(k)!r} there, {v!r} here"
            for k, v in me[part].items()
            if theirs[part].get(k) != v
        ]
        if differ:
            raise CheckpointError(f"the checkpoint is of another {part}: {'; '.join(differ)}")
