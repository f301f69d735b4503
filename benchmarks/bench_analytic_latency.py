"""How much faster a spec's latency is predicted from the spec alone than by tracing its model.

    .venv/bin/python benchmarks/bench_analytic_latency.py [--specs 50] [--device cortex-a72]
    .venv/bin/python benchmarks/bench_analytic_latency.py --quick     # a few seconds, for CI

Times ``predict_latency(spec, device)`` (the spec walked) and ``predict_latency(build_model(spec),
device, input_shape(spec))`` (the model built and traced) on sampled specs of the attendnext
space, single thread, in one run; prints the median time per spec of each, the ratio of the
medians and the largest relative difference between the two predictions (0 expected).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from attend_search import build_model, input_shape, load_space
from attend_search.evaluators.latency.predict import predict_latency


def seconds(fn: Callable[[], object], repeats: int = 1) -> float:
    """Mean wall time of one call (repeated where a single call is too short to time)."""
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def traced(spec, device: str) -> float:
    return predict_latency(build_model(spec), device, input_shape(spec))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=50, help="sampled specs (seeds 0..N-1)")
    parser.add_argument("--device", default="cortex-a72")
    parser.add_argument("--quick", action="store_true", help="5 specs, fewer repeats")
    args = parser.parse_args()
    count, repeats = (5, 5) if args.quick else (args.specs, 20)
    torch.set_num_threads(1)
    space = load_space("attendnext")
    specs = [space.sample(seed) for seed in range(count)]
    walked = statistics.median(
        seconds(partial(predict_latency, spec, args.device), repeats) for spec in specs
    )
    built = statistics.median(seconds(partial(traced, spec, args.device)) for spec in specs)
    error = max(abs(predict_latency(s, args.device) / traced(s, args.device) - 1) for s in specs)
    print(f"{len(specs)} specs of attendnext on {args.device}, median time per spec")
    print(f"  predict_latency(spec)                  {walked * 1e3:9.3f} ms")
    print(f"  build_model + trace + predict_latency  {built * 1e3:9.3f} ms")
    print(f"  speed-up                               {built / walked:9.0f} x")
    print(f"  largest relative difference            {error:9.1e}")


if __name__ == "__main__":
    main()
