"""How much faster the analytic cost model is than building the model and tracing it.

    .venv/bin/python benchmarks/bench_cost.py [--specs 30]

Times ``analytic_cost(spec)`` and ``fvcore_cost(spec)`` (build_model, then the fvcore trace)
on sampled specs of the attendnext space, single thread, and prints the median time per spec
of each and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from attend_search import load_space
from attend_search.evaluators.cost.analytic import analytic_cost
from attend_search.evaluators.cost.traced import fvcore_cost


def seconds(fn: Callable[[], object], repeats: int = 1) -> float:
    """Mean wall time of one call (repeated where a single call is too short to time)."""
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=30, help="sampled specs (seeds 0..N-1)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = load_space("attendnext")
    specs = [space.sample(seed) for seed in range(args.specs)]
    analytic = statistics.median(seconds(partial(analytic_cost, spec), 20) for spec in specs)
    traced = statistics.median(seconds(partial(fvcore_cost, spec)) for spec in specs)
    print(f"{len(specs)} specs of attendnext, median time per spec")
    print(f"  analytic_cost               {analytic * 1e3:9.3f} ms")
    print(f"  build_model + fvcore_cost   {traced * 1e3:9.3f} ms")
    print(f"  speed-up                    {traced / analytic:9.0f} x")


if __name__ == "__main__":
    main()
