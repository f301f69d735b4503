"""The learning curve of latency calibration, shared by the latency benchmarks.

For each sample size n and each of several random splits: fit a profile on n measured
networks, predict the others, and score Kendall tau and MAPE; against FLOPs (MACs times a
constant fitted on the same n networks, in relative least squares) on the same split.
Reported: the median over splits, so one lucky or unlucky split does not decide.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import platform
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from attend_search.evaluators.latency.calibrate import FIT_MODES, fit_kernels
from attend_search.evaluators.latency.devices import DeviceProfile, load_device
from attend_search.evaluators.latency.kernels import Kernel
from attend_search.evaluators.latency.measure import measure_passes
from attend_search.evaluators.latency.predict import total_ms
from attend_search.evaluators.latency.profiling import profile_kernels
from attend_search.evaluators.runtimes.onnx import detect_nchwc_block
from attend_search.search_space.space import load_space

MAC_CLASSES = {"conv", "depthwise", "pointwise", "grouped", "linear", "matmul"}


def macs(kernels: list[Kernel]) -> int:
    """The network's FLOPs as MACs: the work of its convolutions and matrix products."""
    return sum(k.macs for k in kernels if k.op_class in MAC_CLASSES)


def on_this_machine(profile: DeviceProfile, runtime: str) -> DeviceProfile:
    """``profile`` running ``runtime`` as this machine runs it: onnxruntime in this CPU's
    blocked layout (none on ARM), whose kernels differ from an ARM build's."""
    block = detect_nchwc_block() if runtime == "onnxruntime" else 0
    return dataclasses.replace(profile, runtime=runtime, nchwc_block=block)


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


def even_passes(text: str) -> int:
    """``--passes``: an even count, so that the two estimates take as many passes each."""
    passes = int(text)
    if passes < 2 or passes % 2:
        raise argparse.ArgumentTypeError(f"must be even and at least 2, got {passes}")
    return passes


def timed_twice(
    networks: Mapping[tuple[str, ...], tuple],
    runtime: str,
    cache: Path | None,
    keys: Sequence[str],
    passes: int = 4,
) -> dict[tuple[str, ...], tuple[float, float]]:
    """Key -> (first, second) milliseconds of ``(network, input shape)`` pairs, one thread:
    two estimates of the same latencies, interleaved in time (``measure_passes``, ``passes``
    passes over all the networks), the first the least of the odd passes, the second of the
    even ones. Read from and added to a CSV cache (:func:`cached_timings`)."""

    even_passes(str(passes))

    def time_missing(done: set) -> dict:
        todo = [key for key in networks if key not in done]
        lows = measure_passes(
            [networks[key] for key in todo],
            runtime=runtime,
            passes=passes,
            log=lambda line: print(f"  {line}", file=sys.stderr, flush=True),
        )
        return {key: (min(low[0::2]), min(low[1::2])) for key, low in zip(todo, lows)}

    return cached_timings(cache, runtime, keys, ["first_ms", "second_ms"], time_missing)


def kernel_profile(
    path: Path,
    base: DeviceProfile,
    runtime: str,
    budget_s: float,
    count: int,
    sizes: Sequence[int] = (),
) -> DeviceProfile:
    """The kernel-profiled profile at ``path``, made first if the file is missing: probes of
    ``count`` ``attendnext`` samples of seeds 1000 on (none of the networks the benchmarks
    score), at each of ``sizes`` (default: their own)."""
    if not path.exists():
        space = load_space("attendnext")
        samples = [space.sample(1000 + i) for i in range(count)]
        profile = profile_kernels(
            [dataclasses.replace(s, input_size=px) for s in samples for px in sizes] or samples,
            base,
            runtime=runtime,
            budget_s=budget_s,
            name=path.stem,
            machine=f"{platform.node()} ({platform.machine()})",
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
        profile.save(path)
    profile = load_device(path)
    if profile.nchwc_block != base.nchwc_block:
        sys.exit(
            f"{path}: timed with onnxruntime blocking {profile.nchwc_block} channels, this "
            f"machine blocks {base.nchwc_block}: profile the kernels again here"
        )
    learned = profile.kernel_profile
    print(
        f"kernel profile {path}: {learned.provenance['probes']} probes in "
        f"{learned.provenance['seconds']:.0f} s, leave-one-out error per class: "
        + ", ".join(
            f"{c} {k.loo_error_pct:.0f}% ({k.probes})"
            for c, k in learned.classes.items()
            if k.loo_error_pct is not None
        )
    )
    return profile
