"""The learning curve of latency calibration, shared by the latency benchmarks.

For each sample size n and each of several random splits: fit a profile on n measured
networks, predict the others, and score Kendall tau and MAPE; against FLOPs (MACs times a
constant fitted on the same n networks, in relative least squares) on the same split.
Reported: the median over splits, so one lucky or unlucky split does not decide.
"""

from __future__ import annotations

import csv
import statistics
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from attend_search.evaluators.latency.calibrate import FIT_MODES, fit_kernels
from attend_search.evaluators.latency.devices import DeviceProfile
from attend_search.evaluators.latency.kernels import Kernel
from attend_search.evaluators.latency.measure import measure, timed_rounds
from attend_search.evaluators.latency.predict import total_ms
from attend_search.evaluators.model_input import as_model

MAC_CLASSES = {"conv", "depthwise", "pointwise", "grouped", "linear", "matmul"}


def macs(kernels: list[Kernel]) -> int:
    """The network's FLOPs as MACs: the work of its convolutions and matrix products."""
    return sum(k.macs for k in kernels if k.op_class in MAC_CLASSES)


def scores(predicted: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    """``(Kendall tau, MAPE %)``."""
    return (
        float(kendalltau(predicted, measured).statistic),
        float(np.mean(np.abs(predicted - measured) / measured) * 100),
    )


def flops_fit(work: np.ndarray, measured: np.ndarray) -> float:
    """The constant c minimising sum((c * work / measured - 1)^2): relative errors, as the
    latency fit uses."""
    r = work / measured
    return float(r.sum() / (r * r).sum())


def learning_curve(
    kernels: Sequence[list[Kernel]],
    measured: np.ndarray,
    base: DeviceProfile,
    sizes: Sequence[int],
    splits: int,
    modes: Sequence[str] = FIT_MODES,
    seed: int = 0,
    test: int | None = None,
    hold_fixed_costs: bool = False,
) -> dict[tuple[int, str], tuple[float, float]]:
    """``(n, mode or "flops") -> (median tau, median MAPE)`` over ``splits`` random splits;
    ``test`` caps the networks predicted per split (all the others by default)."""
    rng = np.random.default_rng(seed)
    work = np.array([macs(ks) for ks in kernels], dtype=float)
    results: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for n in sizes:
        for _ in range(splits):
            order = rng.permutation(len(measured))
            fit, held = order[:n], order[n:][:test]
            c = flops_fit(work[fit], measured[fit])
            results.setdefault((n, "flops"), []).append(scores(c * work[held], measured[held]))
            for mode in modes:
                profile = fit_kernels(
                    [kernels[i] for i in fit], measured[fit], base, mode, hold_fixed_costs
                )
                predicted = np.array([total_ms(kernels[i], profile) for i in held])
                results.setdefault((n, mode), []).append(scores(predicted, measured[held]))
    return {
        key: (statistics.median(t for t, _ in v), statistics.median(m for _, m in v))
        for key, v in results.items()
    }


def print_curve(curve: dict[tuple[int, str], tuple[float, float]], title: str) -> None:
    print(title)
    print(f"{'n':>4}  {'fit':<8} {'tau':>6} {'MAPE %':>7}")
    for (n, mode), (tau, mape) in curve.items():
        print(f"{n:>4}  {mode:<8} {tau:6.3f} {mape:7.1f}")


def cached_timings(
    cache: Path | None,
    runtime: str,
    keys: Sequence[str],
    values: Sequence[str],
    time_missing: Callable[[set[tuple[str, ...]]], dict[tuple[str, ...], tuple[float, ...]]],
) -> dict[tuple[str, ...], tuple[float, ...]]:
    """Timings by key: read from a CSV cache (columns ``keys``, runtime, ``values``; other
        runtimes' rows kept as they are), ``time_missing`` given the keys it holds (it times the
    rest and returns them), and the
        cache rewritten with them, rounded as the benchmarks print them."""
    rows = []
    if cache and cache.exists():
        with cache.open() as f:
            rows = list(csv.DictReader(f))
    done = {
        tuple(r[k] for k in keys): tuple(float(r[v]) for v in values)
        for r in rows
        if r["runtime"] == runtime
    }
    done.update(time_missing(set(done)))
    if cache:
        header = [*keys, "runtime", *values]
        with cache.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows([r[h] for h in header] for r in rows if r["runtime"] != runtime)
            writer.writerows(
                [*key, runtime, *(f"{v:.4f}" for v in timed)] for key, timed in done.items()
            )
    return {key: tuple(round(v, 4) for v in timed) for key, timed in done.items()}


def timed_twice(
    networks: Mapping[tuple[str, ...], tuple],
    runtime: str,
    cache: Path | None,
    keys: Sequence[str],
) -> dict[tuple[str, ...], tuple[float, float]]:
    """Key -> (first, second) milliseconds of ``(network, input shape)`` pairs, one thread:
    each converted and timed (``measure``'s latency), then, after all of them, the very files
    timed again; read from and added to a CSV cache (:func:`cached_timings`)."""

    def time_missing(done: set) -> dict:
        todo = [key for key in networks if key not in done]
        timed = {}
        with tempfile.TemporaryDirectory() as tmp:
            files = {}
            for i, key in enumerate(todo):  # first pass: convert, keep the file, time it
                net, shape = networks[key]
                folder = Path(tmp) / str(i)
                folder.mkdir()
                m = measure(net, shape, runtime=runtime, keep=folder)
                files[key] = (m.model_file, m.ms)
                print(f"  {i + 1}/{len(todo)} {' '.join(key)}: {m.ms:.2f} ms", file=sys.stderr)
            for key in todo:  # second pass: the same files, timed again
                path, first = files[key]
                timed[key] = (first, _retime(path, networks[key], runtime))
        return timed

    return cached_timings(cache, runtime, keys, ["first_ms", "second_ms"], time_missing)


def _retime(path: Path, network: tuple, runtime: str) -> float:
    """A kept file timed again as ``measure`` times it (its lowest round median)."""
    _, shape = as_model(*network)
    x = torch.rand(shape).numpy()
    if runtime == "litert":
        from attend_search.evaluators.runtimes.litert import TFLiteModel

        model = TFLiteModel(path, 1)
        run = lambda: model(x)  # noqa: E731
    else:
        from attend_search.evaluators.runtimes.onnx import onnxruntime_session

        session = onnxruntime_session(path, 1)
        feed = {session.get_inputs()[0].name: x}
        run = lambda: session.run(None, feed)  # noqa: E731
    return min(statistics.median(t) for t in timed_rounds(run))
