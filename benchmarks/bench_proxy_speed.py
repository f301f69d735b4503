"""How long does each zero-cost proxy take per spec? And synflow: float64 reference vs fast path.

Samples specs from a space and, for each, times every proxy alone through ``zero_cost`` (the
model built from the spec, as a study does), then all of them together through
``zero_cost_all``; it prints the median milliseconds per spec. For synflow it also times the
computation alone on the same network (copies made beforehand): by the float32 rescaled
path that ``synflow`` takes, first cold, as a study runs it on a new spec (oneDNN builds its
kernels for new shapes), then warm, and by the float64 reference; it prints the ratios and
the largest relative deviation of the fast value from the reference. Times are the thread's
CPU time with one torch thread: on a shared machine other processes do not count.

    python benchmarks/bench_proxy_speed.py --specs 30      # native input sizes, batch 16
    python benchmarks/bench_proxy_speed.py --quick         # seconds: 3 specs at 64 pixels
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from copy import deepcopy
from dataclasses import replace
from functools import partial
from typing import TypeVar

import torch

from attend_search import build_model, input_shape, load_space
from attend_search.cli.common import table
from attend_search.evaluators.proxies import PROXIES, synaptic_flow, zero_cost, zero_cost_all
from attend_search.evaluators.proxies import probe as proxy_probe

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and the milliseconds of this thread's CPU time it took."""
    start = time.thread_time()
    value = fn()
    return value, 1e3 * (time.thread_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="attendnext")
    parser.add_argument("--specs", type=int, default=30, help="specs to sample")
    parser.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="override the specs' input size (default: their own)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="synthetic batch of the proxies (a study's default is 16)",
    )
    parser.add_argument("--quick", action="store_true", help="3 specs at 64 pixels, batch 8")
    args = parser.parse_args()
    if args.quick:
        args.specs, args.input_size, args.batch_size = 3, 64, 8
    torch.set_num_threads(1)

    space = load_space(args.space)
    ms: dict[str, list[float]] = {name: [] for name in (*PROXIES, "all together")}
    reference_ms, cold_ms, warm_ms, deviation = [], [], [], 0.0
    for seed in range(args.specs):
        spec = space.sample(seed)
        if args.input_size:
            spec = replace(spec, input_size=args.input_size)
        net = proxy_probe.scratch(build_model(spec), copy=False)
        shape, copies = input_shape(spec), [deepcopy(net) for _ in range(3)]
        fast, t_cold = timed(partial(synaptic_flow.synflow, copies[0], shape))
        t_warm = timed(partial(synaptic_flow.synflow, copies[1], shape))[1]
        reference, t_reference = timed(partial(synaptic_flow._synflow_float64, copies[2], shape))
        cold_ms.append(t_cold)
        warm_ms.append(t_warm)
        reference_ms.append(t_reference)
        deviation = max(deviation, abs(fast - reference) / abs(reference))
        for name in PROXIES:
            ms[name].append(
                timed(partial(zero_cost, spec, proxy=name, seed=seed, batch_size=args.batch_size))[
                    1
                ]
            )
        ms["all together"].append(
            timed(partial(zero_cost_all, spec, seed=seed, batch_size=args.batch_size))[1]
        )
        print(
            f"spec {seed:3d} at {spec.input_size}px: "
            + "  ".join(f"{name} {ms[name][-1]:.0f}" for name in ms)
            + f" ms; synflow alone: float64 "
            f"{t_reference:.0f} ms, fast {t_cold:.0f} ms cold, {t_warm:.0f} ms warm",
            flush=True,
        )

    print(
        f"\n{args.specs} specs of {args.space}, synthetic batch {args.batch_size}, "
        f"one thread (CPU time); median per spec\n"
    )
    lines = [["proxy", "ms per spec"]] + [
        [name, f"{statistics.median(v):.0f}"] for name, v in ms.items()
    ]
    print(table(lines, right={1}))
    print(
        f"\nsynflow computation alone (on a network built and copied beforehand), median ms: "
        f"float64 reference {statistics.median(reference_ms):.0f}; largest relative deviation "
        f"of the fast path {deviation:.1e}"
    )
    for name, fast_ms in (("cold", cold_ms), ("warm", warm_ms)):
        ratios = [r / f for r, f in zip(reference_ms, fast_ms)]
        print(
            f"  fast, {name}: {statistics.median(fast_ms):.0f}; speed-up median "
            f"{statistics.median(ratios):.1f}x (min {min(ratios):.1f}x, max {max(ratios):.1f}x)"
        )


if __name__ == "__main__":
    main()
