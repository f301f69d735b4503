"""The latency model across input sizes: fitted at one size, how well does it predict others?

Measures the presets and ``--specs`` seeded ``attendnext`` samples at each of ``--sizes``
(one thread, ``--runtime``; :func:`measure`'s protocol: the median of 5 rounds of 10 runs,
by the thread's CPU time). Then, for each size, the built-in profile is calibrated on that
size's timings (``full``, as ``latency calibrate`` fits it) and scored at every size (MAPE
and Kendall tau); beside it, MACs times a constant fitted at the same size, and the
built-in profile uncalibrated. A row per fit size, a column per size predicted; the
diagonal is the fit's own error. ``--kernel-profile FILE`` (a profile from ``latency bench
--kernels``) adds it alone and with its scale and constant fitted at each size.

Spatial size moves working sets across the cache levels (a 32-pixel network's layers stay in
L2, a 224-pixel one's early layers spill to L3 and DRAM), so this is where the profile's
memory levels are put to the test.

    python benchmarks/bench_latency_sizes.py --specs 20 --cache lat-sizes.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
from pathlib import Path

import numpy as np
from latency_curve import cached_timings, flops_fit, macs, scores

from attend_search.evaluators.latency.calibrate import calibration_suite, fit_kernels
from attend_search.evaluators.latency.devices import load_device
from attend_search.evaluators.latency.kernels import extract_kernels
from attend_search.evaluators.latency.measure import measure
from attend_search.evaluators.latency.predict import total_ms
from attend_search.search_space import list_presets

BUILT_IN = {"onnxruntime": "cortex-a76", "litert": "cortex-a76-litert"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", choices=sorted(BUILT_IN), default="onnxruntime")
    p.add_argument("--specs", type=int, default=20, help="attendnext samples (and the presets)")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 224])
    p.add_argument("--cache", type=Path, help="CSV of timings to reuse and extend")
    p.add_argument("--kernel-profile", type=Path, help="a kernel-profiled profile to score too")
    p.add_argument("--quick", action="store_true", help="2 samples, sizes 32 and 64")
    args = p.parse_args()
    if args.quick:
        args.specs, args.sizes = 2, [32, 64]

    suite = calibration_suite(len(list_presets()) + args.specs)
    networks = {
        (spec.name or f"sample-{spec.digest[:12]}", size): dataclasses.replace(
            spec, input_size=size
        )
        for spec in suite
        for size in args.sizes
    }
    timings = _timings(networks, args.runtime, args.cache)
    built_in = load_device(BUILT_IN[args.runtime])
    by_size = {}
    for size in args.sizes:
        keys = [k for k in networks if k[1] == size]
        kernels = [extract_kernels(networks[k], None, args.runtime) for k in keys]
        by_size[size] = (kernels, np.array([timings[k] for k in keys]))

    print(
        f"{len(suite)} networks ({len(list_presets())} presets, {args.specs} attendnext "
        f"samples) at {', '.join(map(str, args.sizes))} px, {args.runtime}, 1 thread, "
        f"{platform.processor() or platform.machine()}"
    )
    header = f"{'':<34}" + "".join(f"{f'{s} px':>15}" for s in args.sizes)
    print(f"\nMAPE % / Kendall tau at each size:\n{header}")
    profiled = load_device(args.kernel_profile) if args.kernel_profile else None

    def row(name: str, profile) -> None:
        predict = profile if callable(profile) else lambda ks: total_ms(ks, profile)
        print(f"  {name:<32}" + "".join(_cell(predict, *by_size[s]) for s in args.sizes))

    for size in args.sizes:
        kernels, measured = by_size[size]
        row(f"calibrated at {size} px", fit_kernels(kernels, measured, built_in, "full"))
        constant = flops_fit(np.array([macs(ks) for ks in kernels], float), measured)
        row(f"MACs x a constant at {size} px", lambda ks, c=constant: c * macs(ks))
        if profiled:
            row(f"kernel profile, fitted at {size}", fit_kernels(kernels, measured, profiled))
    row(f"{built_in.name}, uncalibrated", built_in)
    if profiled:
        row("kernel profile alone", profiled)
    return 0


def _cell(predict, kernels: list, measured: np.ndarray) -> str:
    tau, mape = scores(np.array([predict(ks) for ks in kernels]), measured)
    return f"{mape:8.1f} {tau:5.3f}"


def _timings(networks: dict, runtime: str, cache: Path | None) -> dict:
    """(name, size) -> milliseconds, timed where the cache has none."""

    def time_missing(done: set) -> dict:
        todo = [key for key in networks if (key[0], str(key[1])) not in done]
        timed = {}
        for i, (name, size) in enumerate(todo):
            ms = measure(networks[name, size], runtime=runtime).median_ms
            timed[name, str(size)] = (ms,)
            print(f"  {i + 1}/{len(todo)} {name} at {size} px: {ms:.2f} ms", file=sys.stderr)
        return timed

    timings = cached_timings(cache, runtime, ["network", "size"], ["ms"], time_missing)
    return {(name, int(size)): ms for (name, size), (ms,) in timings.items()}


if __name__ == "__main__":
    sys.exit(main())
