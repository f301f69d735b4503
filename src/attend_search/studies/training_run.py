"""A training run on disk: its checkpoint, its metrics log and the export it ends with.

A run folder holds ``checkpoint.pt`` (everything :func:`..evaluators.trainer.train` needs to
resume, replaced after every epoch), ``metrics.json`` (the spec's digest, the recipe, the data
and loss, top-1 and top-5 per epoch) and, once the last epoch is done, ``export/``: the
trained network as an export (spec, weights, ONNX, ``torch.export``) with a model card. Every
file is written under a temporary name and renamed, so a run stopped at any moment (Ctrl-C, a
job's time limit, a lost machine) leaves the last complete epoch to resume from.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from .. import __version__
from ..errors import AttendSearchError
from ..evaluators.datasets import Dataset
from ..evaluators.trainer import CheckpointError, Recipe, State, Trained, train
from ..search_space import Spec
from .export import _spec, _write
from .results import candidates
from .store import StudyPlace, atomic_folder, load, write_atomic
from .trial_reader import read_trials

CHECKPOINT, METRICS, EXPORT = "checkpoint.pt", "metrics.json", "export"


def run_training(spec: Spec, data: Dataset, recipe: Recipe, out: Path, *, source: str,
                 resume: bool = False, force: bool = False, formats: tuple[str, ...] = ("onnx",),
                 **options) -> Trained:
    """Train in the run folder ``out`` (``options`` go to :func:`train`); export when done.

    A folder that holds a run is continued only with ``resume`` and started over only with
    ``force``; ``source`` (where the spec came from) goes on the model card.
    """
    checkpoint = out / CHECKPOINT
    state = _start(out, checkpoint, resume, force)

    def save(state: State) -> None:
        out.mkdir(parents=True, exist_ok=True)   # here: a run that fails to start leaves nothing
        _save_atomic(state, checkpoint)
        write_atomic(out / METRICS, json.dumps(
            {**state["identity"], "epochs": state["log"]}, indent=2) + "\n")

    try:
        trained = train(spec, data, recipe, state=state, on_epoch=save, **options)
    except CheckpointError as exc:
        raise exc.located(str(checkpoint)) from None
    if trained.finished:
        _export(trained, recipe.resolved(), data, out / EXPORT, source, formats)
    return trained


def trial_spec(where: StudyPlace, number: int) -> Spec:
    """The spec of trial ``number`` of a study, named as its export is."""
    config, study = load(where)
    match = [t for t in candidates(read_trials(study, params=False)) if t.number == number]
    if not match:
        raise AttendSearchError(f"--trial {number}: no feasible, complete trial with that "
                                f"number in study {config.name} (see attend-search show)")
    return _spec(match[0], config)


def _start(out: Path, checkpoint: Path, resume: bool, force: bool) -> State | None:
    """The state to resume from, or None to start; refuses to overwrite a run unasked."""
    if resume and force:
        raise AttendSearchError("--resume continues a run and --force starts it over: not both")
    if resume:
        if not checkpoint.is_file():
            raise AttendSearchError(f"no checkpoint to resume in {out}", source=str(checkpoint))
        try:
            return torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:   # a truncated or foreign file: pickle and zip raise many types
            raise AttendSearchError(f"not a readable checkpoint: {exc}",
                                    source=str(checkpoint)) from None
    held = [p for p in (checkpoint, out / METRICS, out / EXPORT) if p.exists()]
    if held and not force:
        raise AttendSearchError(f"{out} already holds a training run ({held[0].name}); "
                                f"--resume continues it, --force starts it over")
    for path in held:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return None


def _save_atomic(state: State, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _export(trained: Trained, recipe: Recipe, data: Dataset, folder: Path, source: str,
            formats: tuple[str, ...]) -> Path:
    """The trained network as an export folder, written whole or not at all.

    The one place that calls the export code: the study export's writer with the trained
    model, then the weights and a model card of the training.
    """
    with atomic_folder(folder) as work:
        facts = _write(trained.spec, list(formats), work, seed=0, model=trained.model)
        torch.save(trained.model.state_dict(), work / "weights.pt")
        facts["weights.pt"] = "the trained weights (a state_dict for build_model(spec))"
        (work / "MODEL_CARD.md").write_text(model_card(trained, recipe, data, source, facts))
    return folder


def model_card(trained: Trained, recipe: Recipe, data: Dataset, source: str,
               facts: dict[str, str]) -> str:
    spec, last = trained.spec, trained.log[-1]
    fmt = lambda values: "[" + ", ".join(f"{v:.4f}" for v in values) + "]"   # noqa: E731
    lines = [f"# {spec.name or spec.digest} (trained)", "",
             f"`{source}` trained by attend-search {__version__} on `{data.name}` "
             f"({len(data.y_train):,} training, {len(data.y_val):,} validation images, "
             f"{data.num_classes} classes). Spec digest `{spec.digest}`, input "
             f"1x{spec.in_channels}x{spec.input_size}x{spec.input_size}.", "",
             f"Validation top-1 **{last['val_top1']:.4f}**, top-5 {last['val_top5']:.4f} "
             f"after {last['epoch']} epochs.", "",
             "## Input", "",
             f"Images scaled to 0..1, resized to {spec.input_size}x{spec.input_size}, then "
             f"normalised per channel: `(x - mean) / std` with mean {fmt(trained.mean)} and "
             f"std {fmt(trained.std)} (the training split's).", "",
             "## Recipe", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in vars(recipe).items()]
    lines += ["", "## Epochs", "", "| epoch | lr | train loss | val loss | top-1 | top-5 |",
              "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {e['epoch']} | {e['lr']:.3g} | {e['train_loss']:.4f} | {e['val_loss']:.4f} | "
              f"{e['val_top1']:.4f} | {e['val_top5']:.4f} |" for e in trained.log]
    lines += ["", "## Files", ""]
    lines += [f"- `{name}`: {fact}" for name, fact in facts.items()]
    lines += ["", "## Load in Python", "", "```python", "import torch",
              "from attend_search import Spec, build_model",
              "model = build_model(Spec.from_json(open('spec.json').read()))",
              "model.load_state_dict(torch.load('weights.pt'))",
              "model.eval()", "```", ""]
    return "\n".join(lines)
