"""Measured latency on this machine, and the ONNX export it runs on.

``measure_latency`` is the ground truth the latency model is calibrated against: run on a
Raspberry Pi it is real ARM latency. onnxruntime is the default runtime because it is what
edge deployments of these networks run, with the same graph optimisations (batch norm
folded, activations fused into convolutions) that :mod:`.kernels` assumes. ``export_onnx``
is also how studies export their networks. ``runtime="litert"`` converts the network to
LiteRT (:mod:`.litert`, the optional extra ``litert``) and times its interpreter.
"""

from __future__ import annotations

import contextlib
import io
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import onnxruntime as ort
import torch
from torch import nn

from ..errors import AttendSearchError
from ..search_space import Spec
from .forward_trace import eval_mode, torch_threads
from .litert import litert_session
from .model_input import Shape, as_model

RUNTIMES = ("onnxruntime", "torch", "litert")


class MeasurementError(AttendSearchError):
    """Latency measurements cannot be made (a model that does not export) or read."""


def export_onnx(model: nn.Module, input_shape: Shape, path: str | Path,
                opset: int | None = None, dynamic_batch: bool = False) -> int:
    """Write ``model`` (in eval mode, static input shape) to ``path`` as ONNX; the opset used.

    ``dynamic_batch``: the first axis is a named dimension ``batch`` (any size), as exported
    deployment files want; the rest of the shape stays static.

    Uses torch.onnx's ``torch.export``-based exporter (``dynamo=True``), the default and
    maintained one since PyTorch 2.9; the TorchScript exporter is deprecated. It exports every
    block of the search space, including ``F.interpolate`` to the input's size (a static
    shape here) and BlurPool's fixed filter (a constant). Weights are stored in the file
    itself so that it stands alone. ``opset=None`` takes the exporter's default.
    """
    # torch.export specialises a dimension of size 1, so a dynamic batch is traced at 2
    x = torch.zeros((2, *input_shape[1:]) if dynamic_batch else input_shape)
    dynamic = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    try:
        with _quiet_exporter(), eval_mode(model), torch.no_grad():
            program = torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=opset,
                                        dynamic_shapes=dynamic, external_data=False,
                                        verbose=False)
    except Exception as exc:  # the exporter raises many types; the user needs the first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MeasurementError(f"ONNX export failed: {first}") from exc
    return program.model.opset_imports[""]


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress lines, deprecation warnings and log messages
    (such as "torchvision is not installed"): none of them concern our users."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def measure_latency(model_or_spec: nn.Module | Spec, input_shape: Shape | None = None,
                    runtime: str = "onnxruntime", threads: int = 1, warmup: int = 10,
                    repeats: int = 50) -> float:
    """Median milliseconds of ``repeats`` batch-1 inferences after ``warmup`` untimed ones.

    The median, not the mean: a few slow runs are the machine's noise, not the network's
    latency. With one thread the inference runs on the calling thread and is timed by that
    thread's CPU time: on an idle machine (a board set aside for measuring) that equals wall
    time, and on a busy one it leaves out the time the OS gives to other processes, which
    otherwise doubles some measurements on a loaded two-core machine. With more threads the
    work spreads over a thread pool, so it is timed by the wall clock.
    """
    if runtime not in RUNTIMES:
        raise MeasurementError(f"unknown runtime {runtime!r}, expected one of {', '.join(RUNTIMES)}")
    if threads < 1 or warmup < 0 or repeats < 1:
        raise MeasurementError(f"need threads >= 1, warmup >= 0 and repeats >= 1, got "
                               f"{threads}, {warmup} and {repeats}")
    model, shape = as_model(model_or_spec, input_shape)
    x = torch.rand(shape)
    session = {"onnxruntime": _onnxruntime_session, "torch": _torch_session,
               "litert": litert_session}[runtime]
    with session(model, x, threads) as run:
        return statistics.median(timed_runs(run, threads, warmup, repeats))


def timed_runs(run: Callable[[], object], threads: int = 1, warmup: int = 10,
               repeats: int = 50) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``run`` after ``warmup`` untimed ones,
    on the clock :func:`measure_latency` explains (thread CPU time for one thread)."""
    clock = time.thread_time if threads == 1 else time.perf_counter
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = clock()
        run()
        times.append((clock() - start) * 1e3)
    return times


@contextlib.contextmanager
def _torch_session(model: nn.Module, x: torch.Tensor, threads: int) -> Iterator[Callable[[], object]]:
    with eval_mode(model), torch.inference_mode(), torch_threads(threads):
        yield lambda: model(x)


@contextlib.contextmanager
def _onnxruntime_session(model: nn.Module, x: torch.Tensor, threads: int
                         ) -> Iterator[Callable[[], object]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, tuple(x.shape), path)
        session = onnxruntime_session(path, threads)
    feed = {session.get_inputs()[0].name: x.numpy()}
    yield lambda: session.run(None, feed)


def onnxruntime_session(path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session as :func:`measure_latency` times it: all graph
    optimisations, ``threads`` intra-op threads, sequential execution, errors only logged."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3          # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
