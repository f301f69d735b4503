"""Export chosen architectures: spec JSON, ONNX, a ``torch.export`` program, a model card.

Each architecture goes to its own folder, written under a temporary name and renamed when
complete, so an interrupted export never leaves a half-written model behind; an existing
folder is replaced only when asked (``force``). Weights are
the builder's seeded initialisation: the search ranks *architectures*; train the exported
spec (``build_model(Spec.from_json(...))``) before deploying it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from optuna.trial import FrozenTrial

from .. import __version__
from ..errors import AttendSearchError
from ..evaluators.measure import export_onnx
from ..explorer import record_of
from ..search_space import Spec, build_model, input_shape
from .config import StudyConfig
from .store import atomic_folder

FORMATS = ("json", "onnx", "pt2")
TABLE_FORMATS = ("csv", "parquet")


def parse_formats(text: str) -> list[str]:
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS + TABLE_FORMATS]
    if unknown or not formats:
        raise AttendSearchError(f"--format: unknown format {unknown[0] if unknown else text!r}; "
                                f"known: {', '.join(FORMATS + TABLE_FORMATS)}")
    return formats


def _spec(trial: FrozenTrial, config: StudyConfig) -> Spec:
    return Spec.from_dict(record_of(trial).spec).renamed(f"{config.name}-trial{trial.number}")


def export_folder(trial: FrozenTrial, config: StudyConfig, out: Path) -> Path:
    """Where :func:`export_trial` puts a trial: ``<out>/<study>-trial<N>-<digest>``."""
    spec = _spec(trial, config)
    return out / f"{spec.name}-{spec.digest}"


def refuse_overwrite(paths: list[Path], force: bool) -> None:
    """Before anything is written: an export replaces earlier files only with ``force``."""
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise AttendSearchError(f"{existing[0]} already exists; --force replaces it"
                                + (f" and {len(existing) - 1} more" if len(existing) > 1 else ""))


def export_trial(trial: FrozenTrial, config: StudyConfig, formats: list[str], out: Path,
                 seed: int = 0, force: bool = False) -> Path:
    """One trial's folder (:func:`export_folder`); returns its path."""
    spec, final = _spec(trial, config), export_folder(trial, config, out)
    refuse_overwrite([final], force)
    with atomic_folder(final) as work:
        facts = _write(spec, formats, work, seed)
        (work / "MODEL_CARD.md").write_text(model_card(spec, trial, config, facts))
    return final


def _write(spec: Spec, formats: list[str], folder: Path, seed: int,
           model: torch.nn.Module | None = None) -> dict[str, str]:
    """Write ``spec`` and ``model`` (default: its seeded initialisation) in ``formats``."""
    facts = {"spec.json": "the architecture (always written: the model card rebuilds from it)"}
    (folder / "spec.json").write_text(spec.to_json() + "\n")
    torch.manual_seed(seed)
    model = (model or build_model(spec)).eval()
    x = torch.randn(input_shape(spec), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model(x).numpy()
    if "onnx" in formats:
        opset = export_onnx(model, tuple(x.shape), folder / "model.onnx")
        session = ort.InferenceSession(str(folder / "model.onnx"),
                                       providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        diff = float(np.max(np.abs(got - expected)))
        if not np.allclose(got, expected, rtol=1e-3, atol=1e-4):
            raise AttendSearchError(f"ONNX output differs from PyTorch by {diff:.2e} "
                                    f"(trial {spec.name})")
        facts["model.onnx"] = f"opset {opset}, onnxruntime output within {diff:.1e} of PyTorch"
    if "pt2" in formats:
        program = torch.export.export(model, (x,))
        torch.export.save(program, str(folder / "model.pt2"))
        facts["model.pt2"] = f"torch.export program, PyTorch {torch.__version__}"
    return facts


def model_card(spec: Spec, trial: FrozenTrial, config: StudyConfig, facts: dict[str, str]) -> str:
    record = record_of(trial)
    metrics, violations = record.metrics, record.violations
    lines = [f"# {spec.name}", "",
             f"Trial {trial.number} of study `{config.name}` (attend-search {__version__}), "
             f"spec digest `{spec.digest}`, input 1x{spec.in_channels}x{spec.input_size}x"
             f"{spec.input_size}, {spec.num_classes} classes.", "",
             "## Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:,.6g} |" for k, v in metrics.items()]
    lines += ["", "## Constraints", "", "| constraint | violation (<= 0 met) | met |", "|---|---|---|"]
    lines += [f"| {k} | {v:.4g} | {'yes' if v <= 0 else 'NO'} |" for k, v in violations.items()]
    lines += ["", "## Files", ""]
    lines += [f"- `{name}`: {fact}" for name, fact in facts.items()]
    lines += ["", "Weights are an untrained, seeded initialisation: train before use.", "",
              "## Rebuild in Python", "", "```python",
              "from attend_search import Spec, build_model",
              "spec = Spec.from_json(open('spec.json').read())",
              f"model = build_model(spec)  # digest {spec.digest}", "```", ""]
    return "\n".join(lines)
