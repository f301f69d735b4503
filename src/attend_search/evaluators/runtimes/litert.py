"""LiteRT (TensorFlow Lite): convert a network to ``.tflite``, optionally int8; run and time it.

LiteRT is what most Raspberry Pi, phone and microcontroller deployments run, so it is the
second runtime beside onnxruntime. Conversion goes through ``litert-torch`` (PyTorch ->
LiteRT, via ``torch.export``), int8 through ``ai-edge-quantizer``'s static recipe (int8
weights per channel, int8 activations calibrated on real images), and inference through
``ai-edge-litert``'s interpreter (XNNPACK on CPU). All three are the optional extra
``litert`` (``pip install 'attend-search[litert]'``); :func:`require_litert` says so
when they are missing.

The converted model has the static input shape it was converted at (batch 1 for
deployment): :func:`run_tflite` feeds a larger batch image by image.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import AttendSearchError
from ..graph.trace import eval_mode

PACKAGES = ("litert_torch", "ai_edge_litert", "ai_edge_quantizer")


class LiteRTError(AttendSearchError):
    """LiteRT is not installed, or a network does not convert or run."""


def litert_available() -> bool:
    return all(importlib.util.find_spec(p) is not None for p in PACKAGES)


def require_litert() -> None:
    missing = [p for p in PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise LiteRTError(
            f"LiteRT needs the optional extra: pip install 'attend-search[litert]' "
            f"(missing {', '.join(missing)})"
        )


def convert_tflite(
    model: nn.Module,
    input_shape: tuple[int, ...],
    path: str | Path,
    calibration: torch.Tensor | None = None,
) -> Path:
    """Write ``model`` (eval mode, static ``input_shape``) to ``path`` as a LiteRT flatbuffer.

    With ``calibration`` (images ``(N, C, H, W)`` the network will see), the file is int8
    (:func:`quantize_tflite` of the float conversion).
    """
    require_litert()
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        float_path = path if calibration is None else Path(tmp) / "float.tflite"
        with _failing_as("conversion"), eval_mode(model), torch.no_grad():
            import litert_torch  # its import logs too

            litert_torch.convert(model, (torch.zeros(input_shape),)).export(str(float_path))
        if calibration is not None:
            quantize_tflite(float_path, path, calibration)
    return path


def quantize_tflite(float_path: str | Path, out: str | Path, calibration: torch.Tensor) -> Path:
    """Write the int8 version of a float ``.tflite`` file: int8 weights (per channel) and
    activations, the activations' ranges taken from ``calibration`` images ``(N, C, H, W)``,
    fed at the file's batch size."""
    require_litert()
    out = Path(out)
    with _failing_as("int8 quantization"):
        from ai_edge_quantizer import quantizer, recipe

        interpreter = _interpreter(float_path, threads=1)
        ((signature, detail),) = interpreter.get_signature_list().items()
        (name,) = detail["inputs"]
        batch = int(interpreter.get_input_details()[0]["shape"][0])
        images = calibration.detach().float().numpy()
        if len(images) < batch:
            raise LiteRTError(f"int8 calibration needs at least {batch} images, got {len(images)}")
        samples = [{name: images[i : i + batch]} for i in range(0, len(images) - batch + 1, batch)]
        q = quantizer.Quantizer(str(float_path), recipe.static_wi8_ai8())
        result = q.calibrate({signature: samples}, num_threads=1)
        q.quantize(result, enable_progress_report=False).export_model(str(out), overwrite=True)
    out.chmod(0o644)  # the quantizer writes it executable
    return out


@contextlib.contextmanager
def _failing_as(step: str) -> Iterator[None]:
    """Quiet, and a :class:`LiteRTError` with the first line of whatever the step raised."""
    try:
        with _quiet():
            yield
    except LiteRTError:
        raise
    except Exception as exc:  # the converter raises many types; the user needs the first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LiteRTError(f"LiteRT {step} failed: {first}") from exc


def _interpreter(path: str | Path, threads: int):
    require_litert()
    from ai_edge_litert.interpreter import Interpreter

    with _quiet():
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    return interpreter


class TFLiteModel:
    """A ``.tflite`` file in the LiteRT interpreter: call it on a batch (float32; quantized
    by the input's scale where the file takes int8), fed in the file's own batch size, to
    get the float32 outputs."""

    def __init__(self, path: str | Path, threads: int = 1):
        self.path = Path(path)
        self._interpreter = _interpreter(path, threads)
        (self._in,), (self._out,) = (
            self._interpreter.get_input_details(),
            self._interpreter.get_output_details(),
        )
        self.input_shape = tuple(int(n) for n in self._in["shape"])
        self.int8 = any(d["dtype"] == np.int8 for d in self._interpreter.get_tensor_details())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        batch = self.input_shape[0]
        if len(x) % batch:
            raise LiteRTError(
                f"{self.path}: a batch of {len(x)} is not a multiple of the file's {batch}"
            )
        if len(x) == batch:
            return self._invoke(x)
        return np.concatenate([self._invoke(x[i : i + batch]) for i in range(0, len(x), batch)])

    def bound_invoke(self, x: np.ndarray) -> Callable[[], None]:
        """The interpreter's inference with ``x`` set as its input once: the runtime's work
        only, as a board's benchmark times it. Setting the input and copying the output out
        each time costs more than a memory-bound kernel's probe itself (a 1.5 MiB multiply:
        35 us to invoke, 185 us with the copies)."""
        self._interpreter.set_tensor(self._in["index"], _to_dtype(x, self._in))
        return self._interpreter.invoke

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._in["index"], _to_dtype(x, self._in))
        self._interpreter.invoke()
        y = self._interpreter.get_tensor(self._out["index"])
        scale, zero = self._out["quantization"]
        return (y.astype(np.float32) - zero) * scale if scale else y.copy()


def _to_dtype(x: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if not scale:
        return x.astype(detail["dtype"])
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])


def tflite_ops(path: str | Path) -> list[str]:
    """The builtin ops of a ``.tflite`` file (``CONV_2D``, ``PAD``, ...) in its order, without
    the nodes XNNPACK's delegate adds: what the latency model's LiteRT kernels mirror."""
    details = _interpreter(path, threads=1)._get_ops_details()
    return [op["op_name"] for op in details if op["op_name"] != "DELEGATE"]


def run_tflite(path: str | Path, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """Outputs of a ``.tflite`` file for a batch ``x`` (see :class:`TFLiteModel`)."""
    return TFLiteModel(path, threads)(x)


@contextlib.contextmanager
def litert_session(
    model: nn.Module | Path, x: torch.Tensor, threads: int, keep: str | Path | None = None
) -> Iterator[tuple[Callable[[], object], Path | None]]:
    """For :func:`~attend_search.evaluators.latency.measure.measure`: ``model`` converted at ``x``'s
    shape (or a ``.tflite`` file kept before), a function that runs ``x`` through the
    interpreter, and where the file was kept (``keep/model.tflite``, moved in place whole;
    None without ``keep``, or when given a file)."""
    if isinstance(model, Path):
        yield TFLiteModel(model, threads).bound_invoke(x.numpy()), None
        return
    with tempfile.TemporaryDirectory(dir=keep) as tmp:
        path = convert_tflite(model, tuple(x.shape), Path(tmp) / "model.tflite")
        if keep is not None:
            path = Path(keep) / "model.tflite"
            os.replace(Path(tmp) / "model.tflite", path)
        yield (
            TFLiteModel(path, threads).bound_invoke(x.numpy()),
            (path if keep is not None else None),
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the converter's progress lines and the C++ libraries' log lines, which write
    straight to the process's stdout and stderr (file descriptors 1 and 2)."""
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
