"""The latency model on this machine against the machine's own repeat-measurement ceiling.

Measures the presets, ``--specs`` seeded ``attendnext`` samples and the reference models
(FBNet-C, MobileOne-S1, MobileViT-XS, ...) on ``--runtime`` with one thread, in
``--passes`` passes over all of them (each converted once): two estimates of each latency,
interleaved in time, the first the least of the odd passes, the second of the even ones.
Printed:

for ``--splits`` random draws of the largest of ``--calibrate`` sample counts (a fit on
fewer takes the first of them), on every network outside the draw (median over draws),
each against the second timing:

1. the ceiling: the first timing (Kendall tau, and MAPE); no predictor fitted on the first
   timings can be scored much above it;
2. the profile calibrated on the draw's first timings (``full`` and ``auto``, the fixed
   costs fitted, as ``latency calibrate`` does), MACs times a constant fitted on the same,
   and the built-in profile uncalibrated (it describes another CPU: its rank is what
   counts).

``--cache FILE`` keeps the timings (a CSV), so that a rerun only re-fits.

``--kernel-profile FILE`` adds kernel profiling (``latency bench --kernels``): the built-in
profile corrected by timing single kernels for ``--kernel-budget-s`` seconds (the file is
written, or read if it exists), scored alone and with its scale and per-inference constant
fitted to each draw's networks. The probes' shapes come from ``attendnext`` samples of
other seeds (1000 on) than the networks scored.

    python benchmarks/bench_latency_ceiling.py --specs 50 --cache lat-ceiling.csv
    python benchmarks/bench_latency_ceiling.py --specs 50 --cache lat-ceiling.csv \
        --kernel-profile kernels.yaml
"""

from __future__ import annotations

import argparse
import platform
import statistics
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
from attend_search.search_space import get_reference_model, list_presets, list_reference_models

BUILT_IN = {"onnxruntime": "cortex-a76", "litert": "cortex-a76-litert"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", choices=sorted(BUILT_IN), default="onnxruntime")
    p.add_argument("--specs", type=int, default=50, help="attendnext samples")
    p.add_argument(
        "--calibrate",
        type=int,
        nargs="+",
        default=[5, 10, 20],
        help="samples each profile is fitted on: a learning curve (default 5 10 20)",
    )
    p.add_argument("--splits", type=int, default=20)
    p.add_argument("--cache", type=Path, help="CSV of timings to reuse and extend")
    p.add_argument("--passes", type=even_passes, default=4, help="timing passes (default 4)")
    p.add_argument(
        "--quick", action="store_true", help="4 samples, no reference models, 3 draws of 3"
    )
    p.add_argument("--kernel-profile", type=Path, help="kernel-profiled profile to score")
    p.add_argument("--kernel-budget-s", type=float, default=300.0)
    p.add_argument("--kernel-networks", type=int, default=40, help="samples probed")
    args = p.parse_args()
    if args.quick:
        args.specs, args.calibrate, args.splits = 4, [3], 3
    args.calibrate = sorted(set(args.calibrate))
    if not 2 <= args.calibrate[0] <= args.calibrate[-1] < args.specs:
        p.error(f"--calibrate must be at least 2 and under --specs ({args.specs})")

    networks = _networks(args.specs, references=not args.quick)
    timings = {
        n: pair
        for (n,), pair in timed_twice(
            {(n,): net for n, net in networks.items()},
            args.runtime,
            args.cache,
            ["network"],
            args.passes,
        ).items()
    }
    first, second = (np.array([timings[name][i] for name in networks]) for i in (0, 1))
    built_in = on_this_machine(load_device(BUILT_IN[args.runtime]), args.runtime)
    kernels = [
        extract_kernels(net, shape, args.runtime, built_in.nchwc_block)
        for net, shape in networks.values()
    ]
    work = np.array([macs(ks) for ks in kernels], dtype=float)
    profiled = args.kernel_profile and kernel_profile(
        args.kernel_profile, built_in, args.runtime, args.kernel_budget_s, args.kernel_networks
    )

    samples = [i for i, name in enumerate(networks) if name.startswith("sample")]
    rng = np.random.default_rng(0)
    rows: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.splits):
        # every predictor is scored on the networks outside the largest fit set
        order = rng.choice(samples, args.calibrate[-1], replace=False)
        held = np.setdiff1d(np.arange(len(networks)), order)

        def score(name: str, predicted: np.ndarray) -> None:
            rows.setdefault(name, []).append(scores(predicted[held], second[held]))

        score("ceiling: the first timing", first)
        if profiled:
            score("kernel profiling alone", np.array([total_ms(ks, profiled) for ks in kernels]))
        for n in args.calibrate:
            fit = order[:n]
            for mode in ("full", "auto"):
                profile = fit_kernels([kernels[i] for i in fit], first[fit], built_in, mode)
                score(
                    f"calibrated on {n} ({mode})", np.array([total_ms(k, profile) for k in kernels])
                )
            if profiled:
                profile = fit_kernels([kernels[i] for i in fit], first[fit], profiled)
                score(
                    f"kernel profiling + {n} networks",
                    np.array([total_ms(ks, profile) for ks in kernels]),
                )
            score(f"MACs x a constant on {n}", flops_fit(work[fit], first[fit]) * work)
        score(f"{built_in.name}, uncalibrated", np.array([total_ms(k, built_in) for k in kernels]))

    print(
        f"{len(networks)} networks ({len(list_presets())} presets, {len(samples)} attendnext "
        f"samples, the rest reference models), {args.runtime}, 1 thread, "
        f"{platform.processor() or platform.machine()}; median {statistics.median(first):.2f} ms"
    )
    print(
        f"\nagainst the second timing of the networks not calibrated on, median over "
        f"{args.splits} draws:\n{'':<40} {'tau':>6} {'MAPE %':>7}"
    )
    for name, results in rows.items():
        print(
            f"  {name:<38} {statistics.median(t for t, _ in results):6.3f} "
            f"{statistics.median(m for _, m in results):7.1f}"
        )
    return 0


def _networks(count: int, references: bool = True) -> dict[str, tuple]:
    """Name -> (network, input shape): the presets, the samples, the reference models."""
    suite = calibration_suite(len(list_presets()) + count)
    presets, samples = suite[: len(list_presets())], suite[len(list_presets()) :]
    networks = {spec.name: (spec, None) for spec in presets}
    networks |= {f"sample-{spec.digest[:12]}": (spec, None) for spec in samples}
    if references:
        networks |= {name: get_reference_model(name) for name in list_reference_models()}
    return networks


if __name__ == "__main__":
    sys.exit(main())
