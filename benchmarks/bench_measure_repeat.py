"""How well a measurement repeats itself, by protocol: the basis of ``measure``'s defaults.

The presets and ``--specs`` seeded ``attendnext`` samples are exported once at each of
``--sizes`` (onnxruntime, one thread); each file is then timed twice with each protocol
(rounds x runs a round; the median of all runs, and the lowest round median), the second
pass after the whole first. Printed: per protocol and size, how far the second timing is
from the first (mean absolute difference, Kendall tau). A protocol that repeats better
leaves a latency model less noise to be scored against.

    python benchmarks/bench_measure_repeat.py --sizes 32 64 224
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from latency_curve import scores

from attend_search.evaluators.latency.calibrate import calibration_suite
from attend_search.evaluators.latency.measure import lowest_median, measure, timed_rounds
from attend_search.evaluators.model_input import as_model
from attend_search.evaluators.runtimes.onnx import bound_run, onnxruntime_session
from attend_search.search_space import list_presets


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--specs", type=int, default=20, help="attendnext samples (and the presets)")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 224])
    p.add_argument("--protocols", nargs="+", default=["5x10", "10x20"], help="ROUNDSxRUNS")
    p.add_argument("--quick", action="store_true", help="2 samples at 32 px")
    args = p.parse_args()
    if args.quick:
        args.specs, args.sizes = 2, [32]
    suite = calibration_suite(len(list_presets()) + args.specs)
    print(f"{len(suite)} networks, onnxruntime, 1 thread; second timing against the first:")
    print(f"{'protocol':<34}" + "".join(f"{f'{s} px':>16}" for s in args.sizes))
    rows: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            runs = [_session(dataclasses.replace(s, input_size=size), Path(tmp)) for s in suite]
            for protocol in args.protocols:
                rounds, repeats = map(int, protocol.split("x"))
                passes = [[_timed(run, rounds, repeats) for run in runs] for _ in range(2)]
                for j, name in enumerate(("median of all runs", "lowest round median")):
                    first, second = (np.array([t[j] for t in one]) for one in passes)
                    tau, mape = scores(second, first)
                    label = f"{rounds} rounds of {repeats}, {name}"
                    rows.setdefault(label, []).append(f"{mape:9.1f}% {tau:5.3f}")
    for label, cells in rows.items():
        print(f"{label:<34}" + "".join(cells))
    return 0


def _session(spec, folder: Path):
    """The spec exported once; a function that runs the file."""
    out = folder / spec.digest[:12] / str(spec.input_size)
    out.mkdir(parents=True)
    path = measure(spec, rounds=1, repeats=1, keep=out).model_file
    return bound_run(onnxruntime_session(path, 1), torch.rand(as_model(spec)[1]).numpy())


def _timed(run, rounds: int, repeats: int) -> tuple[float, float]:
    times = timed_rounds(run, 1, 5, repeats, rounds)
    return statistics.median(t for r in times for t in r), lowest_median(times)


if __name__ == "__main__":
    sys.exit(main())
