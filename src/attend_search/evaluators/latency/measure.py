"""Measured latency on this machine: repeated timed inferences on a runtime (:mod:`..runtimes`).

``measure_latency`` is the ground truth the latency model is calibrated against: run on a
Raspberry Pi it is real ARM latency. It is the lowest of the rounds' medians: on a machine
shared with other work, interference comes in bursts and only adds time, so the quietest
round repeats best (:mod:`.protocol`).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ...search_space import Spec
from ..graph.trace import torch_threads
from ..model_input import Shape, as_measured
from ..runtimes import MeasurementError, session_of
from .protocol import PASSES, REPEATS, ROUNDS, WARMUP


@dataclass(frozen=True)
class Measurement:
    """Repeated rounds of timed inferences: the lowest round median (the latency), the
    highest, and the median of every run.

    The interval is the lowest and highest of the per-round medians. For ``rounds``
    independent rounds the chance that the true median lies outside it is ``2 / 2**rounds``
    (0.2% for the default 10), nothing assumed about the distribution. Its low end is the
    latency the toolkit uses (:attr:`ms`, the module docstring).
    """

    median_ms: float  # median of every timed run
    low_ms: float  # lowest per-round median
    high_ms: float  # highest per-round median
    rounds: int
    repeats: int  # timed runs per round
    runtime: str
    threads: int
    load_average: float  # the 1-minute load average just before measuring
    cores: int
    model_file: Path | None = None  # the file the runtime ran, when it was kept

    @property
    def ms(self) -> float:
        """The network's latency: the lowest round median."""
        return self.low_ms

    @property
    def busy(self) -> bool:
        """Was something else running: a load average of a core's worth or more before
        measuring began? Other processes can slow a measurement."""
        return self.load_average >= 1.0


def measure_latency(
    model_or_spec: nn.Module | Spec,
    input_shape: Shape | None = None,
    runtime: str = "onnxruntime",
    threads: int = 1,
    warmup: int = WARMUP,
    repeats: int = REPEATS,
    rounds: int = ROUNDS,
) -> float:
    """Milliseconds of a batch-1 inference (:attr:`Measurement.ms` of :func:`measure`)."""
    return measure(
        model_or_spec,
        input_shape,
        runtime=runtime,
        threads=threads,
        warmup=warmup,
        repeats=repeats,
        rounds=rounds,
    ).ms


def measure(
    model_or_spec: nn.Module | Spec,
    input_shape: Shape | None = None,
    *,
    runtime: str = "onnxruntime",
    threads: int = 1,
    warmup: int = WARMUP,
    repeats: int = REPEATS,
    rounds: int = ROUNDS,
    keep: str | Path | None = None,
) -> Measurement:
    """``rounds`` rounds of ``repeats`` timed batch-1 inferences after ``warmup`` untimed ones.

    Medians, not means: a few slow runs are the machine's noise, not the network's latency;
    and the lowest round's (:attr:`Measurement.ms`), since noise comes in bursts that can
    slow a whole round. With one thread the inference runs on the calling thread and is
    timed by that thread's CPU time: on an idle machine (a board set aside for measuring)
    that equals wall time, and on a busy one it leaves out the time the OS gives to other
    processes, which otherwise doubles some measurements on a loaded two-core machine. With
    more threads the work spreads over a thread pool, so it is timed by the wall clock.
    PyTorch's and the runtime's thread counts are both set to ``threads``. ``keep``: a
    folder to write the model file the runtime ran (``model.onnx``, ``model.tflite``), so
    that a board can measure the same file. A spec is built as trained
    (:func:`..model_input.as_measured`: its constant-initialised parameters set off their
    constants); a module is timed as given.
    Time: the ONNX export (a few seconds) and ``rounds x repeats + warmup`` inferences.
    """
    session = session_of(runtime)
    _check_protocol(threads, warmup, repeats, rounds)
    model, shape = as_measured(model_or_spec, input_shape)
    x = torch.rand(shape)
    load = os.getloadavg()[0]
    with torch_threads(threads), session(model, x, threads, keep) as (run, model_file):
        times = timed_rounds(run, threads, warmup, repeats, rounds)
    medians = [statistics.median(t) for t in times]
    return Measurement(
        statistics.median(t for r in times for t in r),
        min(medians),
        max(medians),
        rounds,
        repeats,
        runtime,
        threads,
        load,
        os.cpu_count() or 1,
        model_file,
    )


def measure_passes(
    networks: Sequence[tuple[nn.Module | Spec, Shape | None]],
    *,
    runtime: str = "onnxruntime",
    threads: int = 1,
    warmup: int = WARMUP,
    repeats: int = REPEATS,
    rounds: int = ROUNDS,
    passes: int = PASSES,
    log: Callable[[str], None] = lambda line: None,
) -> list[list[float]]:
    """Each ``(network, input shape)``'s latency (:attr:`Measurement.ms`, as :func:`measure`
    times it) in each of ``passes`` passes over all of them: every network is converted
    first, once, then each pass times every one. A shared machine slows down for minutes at a
    time, so one timing of a network can fall in a slow spell; the least of timings made
    minutes apart does not (:mod:`.protocol`). The converted files wait in a temporary
    folder between passes (a runtime that runs no file, ``torch``, keeps the modules), and
    each pass opens one at a time. ``log`` gets a line per network converted and per
    pass."""
    session = session_of(runtime)
    _check_protocol(threads, warmup, repeats, rounds)
    if passes < 1:
        raise MeasurementError(f"need passes >= 1, got {passes}")
    if not networks:
        return []
    with torch_threads(threads), tempfile.TemporaryDirectory() as tmp:
        sources = []  # the kept file, or the module where the runtime runs no file
        for n, (network, input_shape) in enumerate(networks, 1):
            model, shape = as_measured(network, input_shape)
            folder = Path(tmp) / str(n)
            folder.mkdir()
            try:
                with session(model, torch.rand(shape), threads, folder) as (_, path):
                    sources.append((model if path is None else path, shape))
            except MeasurementError as exc:
                raise MeasurementError(f"network {n} of {len(networks)}, {shape}: {exc}") from exc
            log(f"converted {n}/{len(networks)}")
        lows: list[list[float]] = [[] for _ in sources]
        for p in range(passes):
            for (source, shape), low in zip(sources, lows):
                with session(source, torch.rand(shape), threads, None) as (run, _):
                    times = timed_rounds(run, threads, warmup, repeats, rounds)
                low.append(lowest_median(times))
            log(f"pass {p + 1}/{passes} timed")
    return lows


def lowest_median(times: list[list[float]]) -> float:
    """The latency of rounds of timed runs: the lowest round median (the module docstring)."""
    return min(statistics.median(t) for t in times)


def _check_protocol(threads: int, warmup: int, repeats: int, rounds: int) -> None:
    if threads < 1 or warmup < 0 or repeats < 1 or rounds < 1:
        raise MeasurementError(
            f"need threads >= 1, warmup >= 0, repeats >= 1 and rounds >= 1, "
            f"got {threads}, {warmup}, {repeats} and {rounds}"
        )


def timed_rounds(
    run: Callable[[], object],
    threads: int = 1,
    warmup: int = WARMUP,
    repeats: int = REPEATS,
    rounds: int = ROUNDS,
) -> list[list[float]]:
    """Milliseconds of each run of each round (:func:`timed_runs`), the warm-up first."""
    return [timed_runs(run, threads, warmup if r == 0 else 0, repeats) for r in range(rounds)]


def timed_runs(
    run: Callable[[], object], threads: int = 1, warmup: int = 10, repeats: int = 50
) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``run`` after ``warmup`` untimed ones,
    on the clock :func:`measure` explains (thread CPU time for one thread)."""
    clock = time.thread_time if threads == 1 else time.perf_counter
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = clock()
        run()
        times.append((clock() - start) * 1e3)
    return times
