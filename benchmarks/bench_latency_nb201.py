"""The latency model against real Raspberry Pi 5 latencies of NAS-Bench-201 networks.

The dev data (``nb201_dev.csv``) holds single-core Pi 5 latencies of 3,182 NB201 networks
(1x3x32x32, 100 classes) on onnxruntime and on LiteRT (``--runtime``). Printed, each
against FLOPs (MACs times a constant fitted on the same networks) on the same networks:

1. the datasheet profile (``--base``, priors only) and the built-in profile of the runtime;
2. a ``--folds``-fold cross-validation of the full fit (fit on four fifths, predict the
   rest): the bar for a built-in profile is Kendall tau >= 0.93 and MAPE <= 5%;
3. calibration from 20 networks, median over ``--splits`` random draws: the fit's own
   MAPE (the bar: <= 5%, a model that can fit its sample) and, on the other networks, tau
   and MAPE against FLOPs fitted on the same 20 (the bar: both better);
4. the learning curve (``latency_curve``) from 10, 20 and 50 networks, for each way of
   fitting, median over ``--splits`` random splits.

``--write PATH`` saves the profile fitted to every network given (what the built-in
``cortex-a76`` and ``cortex-a76-litert`` hold). All figures are on dev data, not a held-out
result.

    python benchmarks/bench_latency_nb201.py --fixed-scale 0.328 --write cortex-a76.yaml
    python benchmarks/bench_latency_nb201.py --runtime litert --fixed-scale 0.328 \
        --write cortex-a76-litert.yaml
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from dev_data import NB201_DEV
from latency_curve import flops_fit, learning_curve, macs, print_curve, scores

from attend_search import nb201_spec
from attend_search.evaluators.latency.calibrate import calibrate_latency, fit_kernels
from attend_search.evaluators.latency.devices import builtin_devices, load_device
from attend_search.evaluators.latency.kernels import extract_kernels
from attend_search.evaluators.latency.predict import total_ms

DATASHEET = Path(__file__).parent / "devices" / "cortex-a76-datasheet.yaml"
MACHINE = (
    "Raspberry Pi 5 (Cortex-A76 at 2.4 GHz), {runtime}, 1 thread: NAS-Bench-201 "
    "dev data (HW-NAS-Bench-360, task cifar100), 1x3x32x32"
)
BUILT_IN = {"onnxruntime": "cortex-a76", "litert": "cortex-a76-litert"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(NB201_DEV))
    p.add_argument("--runtime", choices=sorted(BUILT_IN), default="onnxruntime")
    p.add_argument(
        "--archs", type=int, help="use this many networks, drawn at random (default all)"
    )
    p.add_argument(
        "--base", default=str(DATASHEET), help="profile to fit from (the datasheet priors)"
    )
    p.add_argument(
        "--fixed-scale",
        type=float,
        help="hold the base's per-kernel fixed costs at this multiple instead of fitting them "
        "(the built-in profiles: 0.328; NAS-Bench-201 fits as well from 0 to about 0.47)",
    )
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--sizes", default="10,20,50")
    p.add_argument("--splits", type=int, default=20)
    p.add_argument("--write", type=Path, help="save the profile fitted to all networks here")
    p.add_argument(
        "--quick", action="store_true", help="300 networks, 3 folds, sizes 10 and 20, 3 splits"
    )
    args = p.parse_args()
    if args.quick:
        args.archs, args.folds, args.sizes, args.splits = 300, 3, "10,20", 3

    with open(args.data) as f:
        rows = list(csv.DictReader(f))
    if args.archs:
        rows = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))[: args.archs]]
    specs = [nb201_spec(r["arch_str"], num_classes=100) for r in rows]
    kernels = [extract_kernels(s, runtime=args.runtime) for s in specs]
    measured = np.array([float(r[f"pi5_{args.runtime}_ms"]) for r in rows])
    work = np.array([macs(ks) for ks in kernels], dtype=float)
    base = replace(load_device(args.base), runtime=args.runtime)
    hold = args.fixed_scale is not None
    if hold:
        base = replace(
            base, fixed_cost_us={c: us * args.fixed_scale for c, us in base.fixed_cost_us.items()}
        )
    built_in = BUILT_IN[args.runtime]
    print(
        f"{len(rows)} NB201 networks, Raspberry Pi 5 {args.runtime}, median "
        f"{statistics.median(measured):.2f} ms\n"
    )

    print(f"{'profile':<28} {'tau':>6} {'MAPE %':>7} {'pred/measured':>14}")
    print(
        f"{'FLOPs x constant (in-sample)':<28} {_row(flops_fit(work, measured) * work, measured)}"
    )
    datasheet = replace(load_device(args.base), runtime=args.runtime)  # its own fixed costs
    profiles = [datasheet] + ([load_device(built_in)] if built_in in builtin_devices() else [])
    for profile in profiles:
        print(
            f"{profile.name:<28} "
            f"{_row(np.array([total_ms(k, profile) for k in kernels]), measured)}"
        )

    folds = np.array_split(np.random.default_rng(1).permutation(len(rows)), args.folds)
    fitted, flops = [], []
    for held in folds:
        fit = np.setdiff1d(np.arange(len(rows)), held)
        profile = fit_kernels([kernels[i] for i in fit], measured[fit], base, "full", hold)
        fitted.append(
            scores(np.array([total_ms(kernels[i], profile) for i in held]), measured[held])
        )
        flops.append(scores(flops_fit(work[fit], measured[fit]) * work[held], measured[held]))
    print(f"\n{args.folds}-fold cross-validation (median over folds; fit on the others):")
    for name, results in (("full fit", fitted), ("FLOPs x constant", flops)):
        print(
            f"  {name:<18} tau {statistics.median(t for t, _ in results):.3f}  "
            f"MAPE {statistics.median(m for _, m in results):.1f}%"
        )
    tau, mape = (statistics.median(x) for x in zip(*fitted))
    passed = tau >= 0.93 and mape <= 5
    print("  PASS" if passed else "  FAIL", "(bar: tau >= 0.93, MAPE <= 5%)\n")
    passed &= _from_twenty(kernels, measured, work, base, args.splits, hold)

    sizes = [int(n) for n in args.sizes.split(",")]
    print_curve(
        learning_curve(kernels, measured, base, sizes, args.splits, hold_fixed_costs=hold),
        f"learning curve from {base.name}, median over {args.splits} splits, "
        f"tested on the networks not used",
    )

    if args.write:
        profile = calibrate_latency(
            [(s, None, ms) for s, ms in zip(specs, measured)],
            base,
            name=built_in,
            machine=MACHINE.format(runtime=args.runtime),
            runtime=args.runtime,
            hold_fixed_costs=hold,
        )
        profile.save(args.write)
        print(f"\nwrote {args.write}: {dict(profile.provenance)}")
    return 0 if passed else 1


def _from_twenty(
    kernels: list,
    measured: np.ndarray,
    work: np.ndarray,
    base,
    splits: int,
    hold: bool,
    n: int = 20,
) -> bool:
    """Calibrated from ``n`` networks: the fit's own MAPE, and tau and MAPE on the others
    against FLOPs fitted on the same ``n`` (medians over ``splits`` random draws)."""
    rng = np.random.default_rng(2)
    own, model, flops = [], [], []
    for _ in range(splits):
        order = rng.permutation(len(measured))
        fit, held = order[:n], order[n:]
        profile = fit_kernels([kernels[i] for i in fit], measured[fit], base, "full", hold)
        own.append(scores(np.array([total_ms(kernels[i], profile) for i in fit]), measured[fit]))
        model.append(
            scores(np.array([total_ms(kernels[i], profile) for i in held]), measured[held])
        )
        flops.append(scores(flops_fit(work[fit], measured[fit]) * work[held], measured[held]))
    own_mape = statistics.median(m for _, m in own)
    (tau, mape), (flops_tau, flops_mape) = (
        (statistics.median(t for t, _ in r), statistics.median(m for _, m in r))
        for r in (model, flops)
    )
    print(f"calibrated from {n} networks (median over {splits} draws):")
    print(f"  the fit's own MAPE {own_mape:.1f}%")
    print(
        f"  on the others: tau {tau:.3f} MAPE {mape:.1f}%  "
        f"(FLOPs: {flops_tau:.3f} {flops_mape:.1f}%)"
    )
    passed = own_mape <= 5 and tau > flops_tau and mape < flops_mape
    print("  PASS" if passed else "  FAIL", "(bar: own MAPE <= 5%, both beat FLOPs)\n")
    return passed


def _row(predicted: np.ndarray, measured: np.ndarray) -> str:
    tau, mape = scores(predicted, measured)
    return f"{tau:6.3f} {mape:7.1f} {statistics.median(predicted / measured):14.2f}"


if __name__ == "__main__":
    sys.exit(main())
