"""How well does the calibrated latency model rank and predict real latency?

Measures onnxruntime single-thread latency on this machine for attendnext specs, calibrates
a profile on ``--calibration`` of them (from the ``--base`` profile) and predicts the
``--test`` others. Prints Kendall tau and MAPE of the prediction next to the Kendall tau of
MACs alone, and the medians. The bar: tau >= 0.9, MAPE <= 10%, and tau clearly above
MACs'.

Measuring takes a few seconds per spec (ONNX export, then warm-up and repeated runs); pass
``--cache FILE`` to keep the measurements, so that a later run only re-fits.

    python benchmarks/bench_latency.py --cache /tmp/latency-measurements.csv
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from attend_search import load_space
from attend_search.evaluators.calibrate import calibrate_latency, fit_quality
from attend_search.evaluators.devices import load_device
from attend_search.evaluators.kernels import extract_kernels
from attend_search.evaluators.latency import total_ms
from attend_search.evaluators.measure import measure_latency

TEST_SEED_OFFSET = 100_000      # test specs come from seeds far from the calibration ones
MAC_CLASSES = {"conv", "depthwise", "pointwise", "grouped", "linear"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calibration", type=int, default=50)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--base", default="cortex-a72")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--cache", type=Path, help="CSV of measurements to reuse and extend")
    args = p.parse_args()
    torch.set_num_threads(1)

    space = load_space("attendnext")
    calibration = {s.digest: s for s in (space.sample(i) for i in range(args.calibration))}
    test = {}
    seed = TEST_SEED_OFFSET
    while len(test) < args.test:        # specs the profile was not fitted on
        spec = space.sample(seed)
        if spec.digest not in calibration:
            test[spec.digest] = spec
        seed += 1

    measured = _measure_all({**calibration, **test}, args)
    profile = calibrate_latency([(s, None, measured[d]) for d, s in calibration.items()],
                                args.base, machine="benchmark machine")
    print(f"calibrated on {len(calibration)} specs: {dict(profile.provenance)}")

    kernels = [extract_kernels(s) for s in test.values()]
    truth = np.array([measured[d] for d in test])
    quality = fit_quality(profile, kernels, truth)
    prior = fit_quality(load_device(args.base), kernels, truth)
    macs = np.array([sum(k.macs for k in ks if k.op_class in MAC_CLASSES) for ks in kernels])
    predicted = np.array([total_ms(ks, profile) for ks in kernels])
    print(f"\ntest: {len(test)} specs, onnxruntime, 1 thread")
    print(f"  calibrated model: Kendall tau {quality.kendall_tau:.3f}  MAPE {quality.mape_pct:.1f}%"
          f"  max error {quality.max_error_pct:.1f}%")
    print(f"  uncalibrated {args.base}: Kendall tau {prior.kendall_tau:.3f}")
    print(f"  MACs alone: Kendall tau {kendalltau(macs, truth).statistic:.3f}")
    print(f"  median measured {statistics.median(truth):.2f} ms, median predicted "
          f"{statistics.median(predicted):.2f} ms, median |error| "
          f"{statistics.median(np.abs(predicted - truth) / truth * 100):.1f}%")
    passed = quality.kendall_tau >= 0.9 and quality.mape_pct <= 10
    print("PASS" if passed else "FAIL", "(bar: tau >= 0.9, MAPE <= 10%)")
    return 0 if passed else 1


def _measure_all(specs: dict, args: argparse.Namespace) -> dict[str, float]:
    """Milliseconds per digest, from the cache where present, measured (and cached) otherwise."""
    measured: dict[str, float] = {}
    if args.cache and args.cache.exists():
        with args.cache.open() as f:
            measured = {row["digest"]: float(row["latency_ms"]) for row in csv.DictReader(f)}
    todo = [d for d in specs if d not in measured]
    start = time.time()
    for n, digest in enumerate(todo, 1):
        measured[digest] = measure_latency(specs[digest], warmup=args.warmup, repeats=args.repeats)
        if args.cache:
            new = not args.cache.exists()
            with args.cache.open("a", newline="") as f:
                writer = csv.writer(f)
                if new:
                    writer.writerow(["digest", "latency_ms"])
                writer.writerow([digest, f"{measured[digest]:.4f}"])
        eta = (time.time() - start) / n * (len(todo) - n)
        print(f"measured {n}/{len(todo)}: {measured[digest]:.2f} ms (eta {eta / 60:.0f} min)",
              file=sys.stderr, flush=True)
    return measured


if __name__ == "__main__":
    sys.exit(main())
