"""ONNX: the export every study and measurement runs on, and an onnxruntime session.

onnxruntime is the default runtime because it is what edge deployments of these networks
run, with the same graph optimisations (batch norm folded, activations fused into
convolutions) that :mod:`..latency.kernels` assumes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from ..graph.trace import eval_mode
from ..model_input import Shape
from . import MeasurementError, Session


def export_onnx(
    model: nn.Module,
    input_shape: Shape,
    path: str | Path,
    opset: int | None = None,
    dynamic_batch: bool = False,
) -> int:
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
            program = torch.onnx.export(
                model,
                (x,),
                str(path),
                dynamo=True,
                opset_version=opset,
                dynamic_shapes=dynamic,
                external_data=False,
                verbose=False,
            )
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


@contextlib.contextmanager
def onnx_session(
    model: nn.Module | Path, x: torch.Tensor, threads: int, keep: str | Path | None
) -> Session:
    if isinstance(model, Path):  # a file kept before
        session, path = onnxruntime_session(model, threads), None
    else:  # exported beside where it is kept, so that moving it in place is atomic
        with tempfile.TemporaryDirectory(dir=keep) as tmp:
            path = Path(tmp) / "model.onnx"
            export_onnx(model, tuple(x.shape), path)
            session = onnxruntime_session(path, threads)
            if keep is not None:
                path = Path(keep) / "model.onnx"
                os.replace(Path(tmp) / "model.onnx", path)
    yield bound_run(session, x.numpy()), (path if keep is not None else None)


def bound_run(session: ort.InferenceSession, x: np.ndarray) -> Callable[[], object]:
    """One inference of ``session`` on ``x`` with its input bound once and each output
    written to a buffer of its own: the runtime's work only, as a board's benchmark times
    it. ``session.run`` allocates the outputs and copies them out each time: about a tenth
    of a memory-bound kernel's probe here (a 1.5 MiB multiply: 41 us bound, 46 us so)."""
    name = session.get_inputs()[0].name
    binding = session.io_binding()
    binding.bind_cpu_input(name, x)
    outputs = session.run(None, {name: x})
    buffers = [ort.OrtValue.ortvalue_from_numpy(np.empty_like(value)) for value in outputs]
    for meta, buffer in zip(session.get_outputs(), buffers, strict=True):
        binding.bind_ortvalue_output(meta.name, buffer)
    held = (x, buffers)  # ORT reads x and writes the buffers in place: alive as long as run

    def run() -> list[ort.OrtValue]:
        session.run_with_iobinding(binding)
        return held[1]

    return run


def onnxruntime_ops(path: str | Path, this_cpu: bool = False) -> list[str]:
    """The node types of the graph onnxruntime runs for an ONNX file on a CPU (``FusedConv``
    and ``FusedGemm`` written ``Conv`` and ``Gemm``), in order: what the latency model's
    kernels mirror. The graph is optimised to ``ORT_ENABLE_EXTENDED``, every transformation
    any CPU gets; ``this_cpu``: to ``ORT_ENABLE_ALL``, as this CPU runs it (an x86 machine's
    in its blocked layout, :mod:`..latency.nchwc`)."""
    level = "ALL" if this_cpu else "EXTENDED"
    return [n.op_type.removeprefix("Fused") for n in _optimised(str(path), level).node]


def _optimised(path: str, level: str):
    """The graph onnxruntime runs for an ONNX file, optimised to ``ORT_ENABLE_{level}``."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, f"ORT_ENABLE_{level}"
        )
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath).graph


@functools.cache
def detect_nchwc_block() -> int:
    """How many channels a block of onnxruntime's blocked layout holds on this CPU (16 with
    AVX-512, 8 with AVX2), 0 where it has none (ARM): read from the graphs it optimises for
    two grouped convolutions, which it blocks only where a group's channels fill blocks."""
    import onnx
    from onnx import TensorProto, helper

    for block in (8, 16):
        channels, groups = 2 * block, 2
        weight = helper.make_tensor(
            "w", TensorProto.FLOAT, [channels, block, 3, 3], [0.0] * channels * block * 9
        )
        conv = helper.make_node("Conv", ["x", "w"], ["y"], group=groups, pads=[1, 1, 1, 1])
        shape = [1, channels, 8, 8]
        graph = helper.make_graph(
            [conv],
            "probe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
            [weight],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        with tempfile.TemporaryDirectory() as tmp:
            onnx.save(model, Path(tmp) / "conv.onnx")
            nodes = _optimised(str(Path(tmp) / "conv.onnx"), "ALL").node
        if any(n.domain.endswith("nchwc") for n in nodes):
            return block
    return 0


def onnxruntime_session(path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime CPU session as :func:`..latency.measure.measure` times it: all graph
    optimisations,
    ``threads`` intra-op threads, sequential execution, errors only logged."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
