"""Calibrating the latency model from a few measured networks of this machine: does it beat FLOPs?

Measures ``--specs`` attendnext samples on this machine (``--runtime``, one thread,
``measure_latency``), then draws the learning curve (``latency_curve``): for 10,
20 and 50 calibration networks and ``--splits`` random splits, a profile fitted from
``--base`` with each way of fitting predicts the networks not used; Kendall tau and MAPE,
median over splits, against FLOPs scaled by a constant fitted on the same networks.

Each measurement takes a few seconds (mostly the ONNX export); ``--cache FILE`` keeps them,
so that a later run only re-fits.

    python benchmarks/bench_latency.py --cache /tmp/latency-onnxruntime.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
from latency_curve import learning_curve, on_this_machine, print_curve

from attend_search import Spec, load_space
from attend_search.evaluators.latency.devices import load_device
from attend_search.evaluators.latency.kernels import extract_kernels
from attend_search.evaluators.latency.measure import measure_latency
from attend_search.evaluators.runtimes import RUNTIMES


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--specs", type=int, default=100, help="attendnext samples to measure")
    p.add_argument("--sizes", default="10,20,50", help="calibration sample sizes")
    p.add_argument("--splits", type=int, default=20, help="random splits per size")
    p.add_argument("--base", default="cortex-a76")
    p.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime")
    p.add_argument("--cache", type=Path, help="CSV of measurements to reuse and extend")
    p.add_argument("--quick", action="store_true", help="12 specs, sizes 5 and 8, 3 splits")
    args = p.parse_args()
    if args.quick:
        args.specs, args.sizes, args.splits = 12, "5,8", 3
    torch.set_num_threads(1)

    specs = _specs(args.specs)
    measured = _measure_all(specs, args)
    base = on_this_machine(load_device(args.base), args.runtime)
    kernels = [extract_kernels(s, None, args.runtime, base.nchwc_block) for s in specs.values()]
    truth = np.array([measured[d] for d in specs])
    sizes = [int(n) for n in args.sizes.split(",")]
    curve = learning_curve(kernels, truth, base, sizes, args.splits)
    print_curve(
        curve,
        f"{len(specs)} attendnext specs measured here ({args.runtime}, 1 thread); "
        f"fitted from {args.base}, median over {args.splits} splits",
    )
    return 0


def _specs(count: int) -> dict[str, Spec]:
    """Distinct attendnext samples, by digest, from seeds 0 on."""
    space, specs, seed = load_space("attendnext"), {}, 0
    while len(specs) < count:
        spec = space.sample(seed)
        specs.setdefault(spec.digest, spec)
        seed += 1
    return specs


def _measure_all(specs: dict[str, Spec], args: argparse.Namespace) -> dict[str, float]:
    """Milliseconds per digest, measured where the cache has none."""
    done: dict[str, float] = {}
    if args.cache and args.cache.exists():
        with args.cache.open() as f:
            done = {r["digest"]: float(r["latency_ms"]) for r in csv.DictReader(f)}
    todo = [d for d in specs if d not in done]
    start = time.time()
    for n, digest in enumerate(todo, 1):
        done[digest] = measure_latency(specs[digest], runtime=args.runtime)
        if args.cache:
            _append(args.cache, digest, done[digest])
        eta = (time.time() - start) / n * (len(todo) - n)
        print(
            f"measured {n}/{len(todo)}: {done[digest]:.2f} ms (eta {eta / 60:.0f} min)",
            file=sys.stderr,
            flush=True,
        )
    return {d: done[d] for d in specs}


def _append(cache: Path, digest: str, ms: float) -> None:
    new = not cache.exists()
    with cache.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["digest", "latency_ms"])
        writer.writerow([digest, f"{ms:.4f}"])


if __name__ == "__main__":
    sys.exit(main())
