"""A training run on disk: its checkpoint, its metrics log and the export it ends with.

A run folder holds ``checkpoint.pt`` (everything :func:`..evaluators.trainer.train` needs to
resume, replaced after every epoch), ``metrics.json`` (the spec's digest, the recipe, the data
and loss, top-1 and top-5 per epoch) and, once the last epoch is done, ``export/``: the
trained network exported as a study's trials are (spec, weights, ONNX, ``torch.export``,
LiteRT, int8; :mod:`.export.network`) with a model card that tells the training. Every
file is written under a temporary name and renamed, so a run stopped at any moment (Ctrl-C, a
job's time limit, a lost machine) leaves the last complete epoch to resume from.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import AttendSearchError
from ..evaluators.runtimes.quantize import calibration_batch
from ..evaluators.training.datasets import Dataset
from ..evaluators.training.recipe import CheckpointError, Recipe, State, Trained, train
from ..files import atomic_path, write_atomic
from ..search_space import Spec
from .export.folders import exported_spec
from .export.model_card import Provenance
from .export.network import Int8, export_network
from .results import candidates
from .storage.store import StudyPlace, load
from .storage.trial_reader import read_trials

CHECKPOINT, METRICS, EXPORT = "checkpoint.pt", "metrics.json", "export"


def run_training(
    spec: Spec,
    data: Dataset,
    recipe: Recipe,
    out: Path,
    *,
    source: str,
    resume: bool = False,
    force: bool = False,
    formats: tuple[str, ...] = ("onnx",),
    calibration_images: int | None = None,
    report: Callable[[dict[str, float]], None] | None = None,
    **options,
) -> Trained:
    """Train in the run folder ``out`` (``options`` go to :func:`train`); export when done.

    A folder that holds a run is continued only with ``resume`` and started over only with
    ``force``; ``source`` (where the spec came from) goes on the model card. ``formats`` are
    the export's (:data:`.export.network.FORMATS`), ``calibration_images`` asks for int8 files too.
    ``report`` gets each epoch's log entry once it is saved.
    """
    checkpoint = out / CHECKPOINT
    state = _start(out, checkpoint, resume, force)

    def save(state: State) -> None:
        # only now: a run that fails to start leaves nothing, nor loses the run it replaces
        out.mkdir(parents=True, exist_ok=True)
        if state["epoch"] == 1:
            shutil.rmtree(out / EXPORT, ignore_errors=True)  # the old run's, with force
        _save_atomic(state, checkpoint)
        write_atomic(
            out / METRICS,
            json.dumps({**state["identity"], "epochs": state["log"]}, indent=2) + "\n",
        )
        if report is not None:
            report(state["log"][-1])

    try:
        trained = train(spec, data, recipe, state=state, on_epoch=save, **options)
    except CheckpointError as exc:
        raise exc.located(str(checkpoint)) from None
    if trained.finished:
        _export(trained, recipe.resolved(), data, out / EXPORT, source, formats, calibration_images)
    return trained


def read_checkpoint(out: Path) -> State | None:
    """The run folder's checkpoint (its ``epoch`` and ``log`` among the rest), or None where
    it has none; an unreadable one is refused as ``--resume`` refuses it."""
    checkpoint = out / CHECKPOINT
    return _start(out, checkpoint, True, False) if checkpoint.is_file() else None


def trial_spec(where: StudyPlace, number: int) -> Spec:
    """The spec of trial ``number`` of a study, named as its export is."""
    config, study = load(where)
    match = [t for t in candidates(read_trials(study, params=False)) if t.number == number]
    if not match:
        raise AttendSearchError(
            f"--trial {number}: no feasible, complete trial with that "
            f"number in study {config.name} (see attend-search show)"
        )
    return exported_spec(match[0], config)


def _start(out: Path, checkpoint: Path, resume: bool, force: bool) -> State | None:
    """The state to resume from, or None to start; refuses to overwrite a run unasked."""
    if resume and force:
        raise AttendSearchError("--resume continues a run and --force starts it over: not both")
    if resume:
        if not checkpoint.is_file():
            raise AttendSearchError(f"no checkpoint to resume in {out}", source=str(checkpoint))
        try:
            return torch.load(checkpoint, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # torch's text advises loading it unsafely instead
            raise AttendSearchError(
                "not a readable checkpoint: not a pickle of tensors and "
                "plain data, as train writes; other objects are never "
                "loaded (they could run code)",
                source=str(checkpoint),
            ) from None
        except Exception as exc:  # a truncated or foreign file: pickle and zip raise many types
            raise AttendSearchError(
                f"not a readable checkpoint: {exc}", source=str(checkpoint)
            ) from None
    held = [p for p in (checkpoint, out / METRICS, out / EXPORT) if p.exists()]
    if held and not force:
        raise AttendSearchError(
            f"{out} already holds a training run ({held[0].name}); "
            f"--resume continues it, --force starts it over"
        )
    return None


def _save_atomic(state: State, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _export(
    trained: Trained,
    recipe: Recipe,
    data: Dataset,
    folder: Path,
    source: str,
    formats: tuple[str, ...],
    calibration_images: int | None,
) -> Path:
    """The trained network as an export folder (:func:`.export.network.export_network`), its card
    telling the training; with ``calibration_images``, int8 files calibrated on that many
    training images."""
    last = trained.log[-1]
    int8 = None
    if calibration_images:
        images, labels = calibration_batch(data.name, trained.spec, calibration_images, recipe.seed)
        int8 = Int8(data.name, images, labels)
    provenance = Provenance(
        weights=f"Trained {last['epoch']} epoch{'s' * (last['epoch'] != 1)} on `{data.name}` "
        f"by `attend-search train`: "
        f"validation top-1 **{last['val_top1']:.4f}**, top-5 {last['val_top5']:.4f} "
        f"({len(data.y_train):,} training, {len(data.y_val):,} validation images)",
        origin=f"`{source}`",
        details=training_details(trained, recipe),
    )
    return export_network(
        trained.spec, trained.model, folder, provenance, formats=formats, int8=int8, force=True
    )


def training_details(trained: Trained, recipe: Recipe) -> list[str]:
    """The card's account of a training: its recipe and every epoch."""
    lines = ["", "## Training", "", "| setting | value |", "|---|---:|"]
    own = "the spec's"  # the only setting left None: input_size
    lines += [f"| {k} | {own if v is None else v} |" for k, v in vars(recipe).items()]
    lines += [
        "",
        "| epoch | lr | train loss | val loss | top-1 | top-5 | s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {e['epoch']} | {e['lr']:.3g} | {e['train_loss']:.4f} | {e['val_loss']:.4f} | "
        f"{e['val_top1']:.4f} | {e['val_top5']:.4f} | {e['seconds']:.1f} |"
        for e in trained.log
    ]
    return lines
