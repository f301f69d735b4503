"""The latency model across input sizes: fitted at one size, how well does it predict others?

Measures the presets and ``--specs`` seeded ``attendnext`` samples at each of ``--sizes``
(one thread, ``--runtime``; :func:`measure`'s protocol: the lowest median of 10 rounds of
20 runs, by the thread's CPU time) in ``--passes`` passes over all of them: two estimates
of each latency, interleaved in time, the first the least of the odd passes, the second of
the even ones. Every figure is scored against the second (MAPE and Kendall tau), the first
row being the first itself: the machine's repeat ceiling at each size. Then, for
each size, the built-in profile is calibrated on that size's first timings (``full``, as
``latency calibrate`` fits it) and scored at every size; beside it, MACs times a constant
fitted at the same size, and the built-in profile uncalibrated. A row per fit size, a
column per size predicted. ``--kernel-profile FILE`` (a profile from ``latency bench
--kernels``) adds it alone and with its scale and constant fitted at each size; a missing
file is made first, probing ``attendnext`` samples of seeds 1000 on (none of the networks
scored) at every one of ``--sizes`` for ``--kernel-budget-s`` seconds.

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
from latency_curve import (
    even_passes,
    flops_fit,
    kernel_profile,
    macs,
    on_this_machine,
    scores,
    timed_twice,
)

from attend_search.evaluators.latency.calibrate import calibration_suite, fit_kernels
from attend_search.evaluators.latency.devices import load_device
from attend_search.evaluators.latency.kernels import extract_kernels
from attend_search.evaluators.latency.predict import total_ms
from attend_search.search_space import list_presets

BUILT_IN = {"onnxruntime": "cortex-a76", "litert": "cortex-a76-litert"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", choices=sorted(BUILT_IN), default="onnxruntime")
    p.add_argument("--specs", type=int, default=20, help="attendnext samples (and the presets)")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 224])
    p.add_argument("--cache", type=Path, help="CSV of timings to reuse and extend")
    p.add_argument("--passes", type=even_passes, default=4, help="timing passes (default 4)")
    p.add_argument("--kernel-profile", type=Path, help="a kernel-profiled profile to score too")
    p.add_argument("--kernel-budget-s", type=float, default=300.0)
    p.add_argument("--kernel-networks", type=int, default=40, help="samples probed, each size")
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
    timings = timed_twice(
        {(name, str(size)): (spec, None) for (name, size), spec in networks.items()},
        args.runtime,
        args.cache,
        ["network", "size"],
        args.passes,
    )
    built_in = on_this_machine(load_device(BUILT_IN[args.runtime]), args.runtime)
    by_size = {}  # size -> kernels, first and second timings
    for size in args.sizes:
        keys = [k for k in networks if k[1] == size]
        kernels = [
            extract_kernels(networks[k], None, args.runtime, built_in.nchwc_block) for k in keys
        ]
        first, second = np.array([timings[name, str(size)] for name, size in keys]).T
        by_size[size] = (kernels, first, second)

    profiled = args.kernel_profile and kernel_profile(
        args.kernel_profile,
        built_in,
        args.runtime,
        args.kernel_budget_s,
        args.kernel_networks,
        args.sizes,
    )
    print(
        f"{len(suite)} networks ({len(list_presets())} presets, {args.specs} attendnext "
        f"samples) at {', '.join(map(str, args.sizes))} px, {args.runtime}, 1 thread, "
        f"{platform.processor() or platform.machine()}"
    )
    header = f"{'':<34}" + "".join(f"{f'{s} px':>15}" for s in args.sizes)
    print(f"\nMAPE % / Kendall tau at each size:\n{header}")

    def row(name: str, profile) -> None:
        predict = profile if callable(profile) else lambda ks: total_ms(ks, profile)
        cells = []
        for size in args.sizes:
            kernels, _, second = by_size[size]
            cells.append(_cell(np.array([predict(ks) for ks in kernels]), second))
        print(f"  {name:<32}" + "".join(cells))

    print(
        f"  {'repeat: the first timing':<32}"
        + "".join(_cell(first, second) for _, first, second in by_size.values())
    )
    for size in args.sizes:
        kernels, measured, _ = by_size[size]
        row(f"calibrated at {size} px", fit_kernels(kernels, measured, built_in, "full"))
        constant = flops_fit(np.array([macs(ks) for ks in kernels], float), measured)
        row(f"MACs x a constant at {size} px", lambda ks, c=constant: c * macs(ks))
        if profiled:
            row(f"kernel profile, fitted at {size}", fit_kernels(kernels, measured, profiled))
    row(f"{built_in.name}, uncalibrated", built_in)
    if profiled:
        row("kernel profile alone", profiled)
    return 0


def _cell(predicted: np.ndarray, measured: np.ndarray) -> str:
    tau, mape = scores(predicted, measured)
    return f"{mape:8.1f} {tau:5.3f}"


if __name__ == "__main__":
    sys.exit(main())
