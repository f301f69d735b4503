"""Check an export folder against itself: every file computes what ``spec.json`` and
``weights.safetensors`` compute in PyTorch; int8 files' accuracy and every file's latency.

Untrained logits in eval mode are about 1e-7, so an absolute tolerance proves nothing (an
all-zero output would pass it). Outputs are compared on a fixed batch of images relative
to the largest PyTorch logit: ``max |file - pytorch| / max |pytorch|``. A float file must
come within :data:`TOLERANCE` of it; a PyTorch output that is all zero or not finite fails
too, since it could not tell a broken file from a good one.
"""

from __future__ import annotations

import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model
from torch import nn

from ...errors import AttendSearchError
from ...evaluators.latency.measure import timed_runs
from ...evaluators.runtimes.litert import TFLiteModel
from ...evaluators.runtimes.onnx import onnxruntime_session
from ...search_space import Spec, build_model

TOLERANCE = 1e-4  # relative to the largest logit; float files reach about 1e-6
CHECK_IMAGES = 2  # batch of the check: more than 1, so the dynamic batch axis is used
LATENCY_REPEATS = 30


class ExportError(AttendSearchError):
    """An exported file does not compute what the network computes."""


@dataclass(frozen=True)
class Check:
    """One file's outputs on the fixed batch, against PyTorch's."""

    file: str
    relative_error: float  # max |file - pytorch| / max |pytorch|
    largest_logit: float  # max |pytorch|, what the error is relative to


def load_exported(folder: Path) -> tuple[Spec, nn.Module]:
    """The spec and the network with the exported weights, in eval mode."""
    spec = Spec.from_json((folder / "spec.json").read_text())
    model = build_model(spec).eval()
    load_model(model, str(folder / "weights.safetensors"))
    return spec, model


def check_images(spec: Spec, seed: int = 0) -> torch.Tensor:
    """The fixed, non-degenerate batch the checks run: uniform [0, 1) pixels."""
    shape = (CHECK_IMAGES, spec.in_channels, spec.input_size, spec.input_size)
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def verify_export(folder: Path, tolerance: float = TOLERANCE) -> list[Check]:
    """Each float file (``model.onnx``, ``model.pt2``, ``model.tflite``) in ``folder`` on
    :func:`check_images`, against PyTorch; :class:`ExportError` if one is off."""
    spec, model = load_exported(folder)
    x = check_images(spec)
    with torch.no_grad():
        want = model(x).numpy()
    largest = float(np.max(np.abs(want)))
    if not np.isfinite(want).all() or largest == 0:
        raise ExportError(
            f"{folder.name}: PyTorch's output on the check images is "
            f"{'not finite' if largest else 'all zero'}; nothing to compare"
        )
    checks = []
    for path in sorted(folder.glob("model.*")):
        if ".int8." in path.name or path.suffix not in RUNNERS:
            continue
        error = float(np.max(np.abs(RUNNERS[path.suffix](path)(x.numpy()) - want))) / largest
        if not error <= tolerance:
            raise ExportError(
                f"{folder.name}/{path.name}: output differs from PyTorch by "
                f"{error:.2e} of the largest logit (tolerance {tolerance:g})"
            )
        checks.append(Check(path.name, error, largest))
    return checks


@dataclass(frozen=True)
class Int8Check:
    """An int8 file against the float network on the calibration images."""

    file: str
    accuracy: float  # top-1 on the calibration labels
    float_accuracy: float  # the float network's, on the same images
    agreement: float  # share of images whose top-1 class is the float network's


def check_int8(folder: Path, images: torch.Tensor, labels: torch.Tensor) -> list[Int8Check]:
    _, model = load_exported(folder)
    with torch.no_grad():
        want = model(images).numpy().argmax(1)
    truth = labels.numpy()
    checks = []
    for path in sorted(folder.glob("model.int8.*")):
        got = RUNNERS[path.suffix](path)(images.numpy()).argmax(1)
        checks.append(
            Int8Check(
                path.name,
                float(np.mean(got == truth)),
                float(np.mean(want == truth)),
                float(np.mean(got == want)),
            )
        )
    return checks


def file_latency(folder: Path) -> dict[str, float]:
    """Median ms of batch-1 inference, one thread, for each deployable file (ONNX, LiteRT)."""
    spec = Spec.from_json((folder / "spec.json").read_text())
    x = check_images(spec)[:1].numpy()
    times = {}
    for path in sorted(folder.glob("model.*"), key=lambda p: (p.suffix, ".int8." in p.name)):
        if path.suffix in (".onnx", ".tflite"):
            run = RUNNERS[path.suffix](path)
            times[path.name] = statistics.median(
                timed_runs(lambda: run(x), 1, warmup=5, repeats=LATENCY_REPEATS)
            )
    return times


def machine() -> str:
    return f"{platform.node()} ({platform.machine()}, {platform.system()})"


def _onnx(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    session = onnxruntime_session(path)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _pt2(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    module = torch.export.load(str(path)).module()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return run


RUNNERS: dict[str, Callable[[Path], Callable[[np.ndarray], np.ndarray]]] = {
    ".onnx": _onnx,
    ".pt2": _pt2,
    ".tflite": TFLiteModel,
}
