"""Runtimes a network is measured on, one module each: ``onnx`` (onnxruntime, and the ONNX
export that studies write too), ``pytorch`` (eager), ``litert`` (the optional extra ``litert``),
and ``quantize`` (int8 ONNX). A runtime is a *session*: a context manager that takes the
network, an input and a thread count (and a folder to keep the file it runs in) and yields a
function that runs one inference, with the path of the kept file. A runtime that runs a file
also takes, in the network's place, a file it kept before."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

from ...errors import AttendSearchError

Session = Iterator[tuple[Callable[[], object], Path | None]]

# runtime name -> (module, session function); imported when used: each pulls in its runtime
RUNTIMES = {
    "onnxruntime": (".onnx", "onnx_session"),
    "torch": (".pytorch", "torch_session"),
    "litert": (".litert", "litert_session"),
}


class MeasurementError(AttendSearchError):
    """Latency measurements cannot be made (a model that does not export) or read."""


def session_of(runtime: str) -> Callable[..., Any]:
    """The session function of ``runtime``, or an error that lists the runtimes."""
    if runtime not in RUNTIMES:
        raise MeasurementError(
            f"unknown runtime {runtime!r}, expected one of {', '.join(RUNTIMES)}"
        )
    module, name = RUNTIMES[runtime]
    return getattr(import_module(module, __name__), name)
