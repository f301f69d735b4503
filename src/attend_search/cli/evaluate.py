"""``attend-search evaluate``: every cost, predicted latency and chosen proxies of one spec."""

from __future__ import annotations

import argparse
import json

from ..evaluators.cost import analytic_cost
from ..evaluators.forward_trace import torch_threads
from ..evaluators.latency import predict_latency
from ..evaluators.proxies import PROXIES, check_proxy, zero_cost_all
from ..search_space import load_spec
from .common import positive, table


def cmd_evaluate(args: argparse.Namespace) -> None:
    spec = load_spec(args.spec)
    proxies = [check_proxy(p) for p in args.proxy]
    costs = analytic_cost(spec)
    with torch_threads(1):
        total, kernels = predict_latency(spec, args.device, breakdown=True)
        # the ensemble's signals too (ensemble.expressivity, ...): what its number is made of
        scores = zero_cost_all(spec, proxies=proxies, seed=args.seed, signals=True) \
            if proxies else {}
    slowest = sorted(kernels, key=lambda k: k.ms, reverse=True)[: args.top]
    if args.json:
        print(json.dumps({
            "spec": spec.name or args.spec, "digest": spec.digest, **costs,
            "latency": {"device": str(args.device), "ms": total,
                        "top_layers": [{"name": k.name, "op_class": k.op_class, "ms": k.ms,
                                        "macs": k.macs, "bytes": k.bytes, "bound": k.bound}
                                       for k in slowest]},
            "proxies": scores}, indent=2))
        return
    print(f"{spec.name or args.spec}  digest {spec.digest}  input 1x{spec.in_channels}x"
          f"{spec.input_size}x{spec.input_size}")
    rows = [["metric", "value"], ["params", f"{costs['params']:,}"],
            ["MACs", f"{costs['macs']:,}"],
            ["peak activation", f"{costs['peak_activation_bytes'] / 2**20:,.2f} MiB"],
            [f"latency on {args.device}", f"{total:.2f} ms (predicted, batch 1)"]]
    rows += [[f"proxy {name}", f"{value:.4g}"] for name, value in scores.items()]
    print(table(rows, right={1}))
    print(f"\nslowest {len(slowest)} kernels on {args.device}:")
    krows = [["kernel", "class", "ms", "share", "MACs", "bound"]]
    krows += [[k.name, k.op_class, f"{k.ms:.3f}", f"{k.ms / total:.1%}", f"{k.macs:,}", k.bound]
              for k in slowest]
    print(table(krows, right={2, 3, 4}))


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("evaluate", help="costs, predicted latency and zero-cost proxies of a spec")
    s.add_argument("spec", help="spec JSON file, or a preset name")
    s.add_argument("--device", default="cortex-a72",
                   help="built-in device or profile YAML (default cortex-a72)")
    s.add_argument("--proxy", action="append", default=[], metavar="NAME",
                   help=f"zero-cost proxy to compute, repeatable: {', '.join(PROXIES)}")
    s.add_argument("--seed", type=int, default=0, help="seed of weights and synthetic batch")
    s.add_argument("--top", type=positive(int), default=10, help="slowest kernels to list (default 10)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_evaluate)
