"""Export networks: spec JSON, weights, ONNX, ``torch.export``, LiteRT, int8, a model card.

:func:`export_network` writes one network with the weights it is given (a trained model's,
for instance); :func:`export_trial` is its caller for a study's trial, with the builder's
initialisation under a recorded seed (the search ranks *architectures*: train before
deploying). Every folder holds the weights it was exported with (``weights.safetensors``),
and every file in it is checked against them (:mod:`.verify`) before the folder appears:
it is written under a temporary name and renamed when complete, so an interrupted export
never leaves a half-written model behind (one killed outright leaves its temporary folder,
which the next export removes); an existing folder is replaced only with ``force``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from optuna.trial import FrozenTrial
from safetensors.torch import save_model
from torch import nn

from ...errors import AttendSearchError
from ...evaluators.runtimes.litert import convert_tflite, quantize_tflite, require_litert
from ...evaluators.runtimes.onnx import export_onnx
from ...evaluators.runtimes.quantize import quantize_onnx
from ...explorer import record_of
from ...explorer.feasibility import constraint_states
from ...files import umask
from ...search_space import Spec, build_model, input_shape
from ..config import StudyConfig
from .folders import export_folder, exported_spec, partial_folder, remove_abandoned
from .model_card import CardFacts, Provenance, model_card
from .verify import check_int8, file_latency, machine, verify_export

FORMATS = ("json", "onnx", "pt2", "tflite")
TABLE_FORMATS = ("csv", "parquet")
QUANTIZE = ("int8",)
INT8_FORMATS = ("onnx", "tflite")


@dataclass(frozen=True)
class Int8:
    """int8 files from a calibration batch: ``images`` ``(N, C, H, W)`` and their ``labels``
    (for the accuracy drop), drawn from ``source`` (named on the card)."""

    source: str
    images: torch.Tensor
    labels: torch.Tensor


def parse_formats(text: str, quantize: str | None = None) -> list[str]:
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS + TABLE_FORMATS]
    if unknown or not formats:
        raise AttendSearchError(
            f"--format: unknown format {unknown[0] if unknown else text!r}; "
            f"known: {', '.join(FORMATS + TABLE_FORMATS)}"
        )
    if quantize and not set(formats) & set(INT8_FORMATS):
        raise AttendSearchError(
            f"--quantize {quantize}: quantizes the {' and '.join(INT8_FORMATS)}"
            f" formats, and --format {text} has neither"
        )
    if "tflite" in formats:
        require_litert()
    return formats


def refuse_overwrite(paths: list[Path], force: bool) -> None:
    """Before anything is written: an export replaces earlier files only with ``force``."""
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise AttendSearchError(
            f"{existing[0]} already exists; --force replaces it"
            + (f" and {len(existing) - 1} more" if len(existing) > 1 else "")
        )


def export_trial(
    trial: FrozenTrial,
    config: StudyConfig,
    formats: list[str],
    out: Path,
    seed: int = 0,
    int8: Int8 | None = None,
    force: bool = False,
    details: Sequence[str] = (),
) -> Path:
    """One trial's folder (:func:`.folders.export_folder`), weights initialised under
    ``torch.manual_seed(seed)`` (the caller's random state is left as it was); ``details``
    are the card's further lines (the accuracy ``refine`` measured)."""
    spec, record = exported_spec(trial, config), record_of(trial)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(spec)
    provenance = Provenance(
        weights="Untrained: the builder's initialisation",
        origin=f"Trial {trial.number} of study `{config.name}`",
        seed=seed,
        metrics=record.metrics,
        constraints=constraint_states(config.search.constraints, record.violations),
        details=details,
    )
    return export_network(
        spec,
        model,
        export_folder(trial, config, out),
        provenance,
        formats=formats,
        int8=int8,
        force=force,
    )


def export_network(
    spec: Spec,
    model: nn.Module,
    folder: Path,
    provenance: Provenance,
    *,
    formats: list[str] | tuple[str, ...] = ("json", "onnx", "pt2"),
    int8: Int8 | None = None,
    force: bool = False,
) -> Path:
    """Export ``model`` (a network built from ``spec``, with any weights) to ``folder``.

    Always writes ``spec.json``, ``weights.safetensors`` (``model``'s state, exactly) and
    ``MODEL_CARD.md``; then per format ``model.onnx`` (dynamic batch axis), ``model.pt2``
    (``torch.export``, dynamic batch) and ``model.tflite`` (LiteRT, batch 1); with ``int8``,
    ``model.int8.onnx`` and/or ``model.int8.tflite``. Every float file is checked against
    ``model`` (:func:`.verify.verify_export`, which raises :class:`.verify.ExportError`);
    int8 files are scored on the calibration batch and every deployable file is timed here.
    ``provenance`` is what the card says of the weights' origin. ``model`` is left in eval
    mode. Returns ``folder``; an existing one is replaced only with ``force``.
    """
    refuse_overwrite([folder], force)
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(folder.parent, re.escape(folder.name))
    work = partial_folder(folder, os.getpid())
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()  # normal permissions (umask), not mkdtemp's
    try:
        files = _write(spec, model.eval(), work, formats, int8)
        facts = CardFacts(
            files=files,
            weights_sha256=file_sha256(work / "weights.safetensors"),
            checks=verify_export(work),
            int8=check_int8(work, int8.images, int8.labels) if int8 else (),
            calibration=(f"{len(int8.images)} images of `{int8.source}`" if int8 else ""),
            latency_ms=file_latency(work),
            machine=machine(),
        )
        (work / "MODEL_CARD.md").write_text(model_card(spec, provenance, facts))
        if folder.exists():
            shutil.rmtree(folder)
        work.rename(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def _write(
    spec: Spec,
    model: nn.Module,
    folder: Path,
    formats: list[str] | tuple[str, ...],
    int8: Int8 | None,
) -> dict[str, str]:
    """Write the files; what each holds, for the card."""
    shape = input_shape(spec)
    (folder / "spec.json").write_text(spec.to_json() + "\n")
    save_model(model, str(folder / "weights.safetensors"), metadata={"spec_digest": spec.digest})
    files = {
        "spec.json": "the architecture (`attend-search/spec/v1`)",
        "weights.safetensors": "the weights every file here was exported with",
    }
    if "onnx" in formats:
        opset = export_onnx(model, shape, folder / "model.onnx", dynamic_batch=True)
        files["model.onnx"] = f"ONNX opset {opset}, float32, dynamic batch axis `batch`"
        if int8:
            quantize_onnx(folder / "model.onnx", folder / "model.int8.onnx", int8.images)
            files["model.int8.onnx"] = "ONNX int8 (onnxruntime static quantization, QDQ)"
    if "pt2" in formats:
        x = torch.zeros((2, *shape[1:]))
        with torch.no_grad():
            program = torch.export.export(
                model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},)
            )
        torch.export.save(program, str(folder / "model.pt2"))
        files["model.pt2"] = f"`torch.export` program (PyTorch {torch.__version__}), dynamic batch"
    if "tflite" in formats:
        convert_tflite(model, shape, folder / "model.tflite")
        files["model.tflite"] = "LiteRT (TensorFlow Lite) flatbuffer, float32, batch 1"
        if int8:
            quantize_tflite(folder / "model.tflite", folder / "model.int8.tflite", int8.images)
            files["model.int8.tflite"] = "LiteRT int8 (ai-edge-quantizer static, batch 1)"
    for path in folder.iterdir():
        path.chmod(0o644 & ~umask())
    return files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
