"""``attend-search evaluate``: every cost, predicted latency and chosen proxies of one spec.

``evaluate SPEC`` scores with a default study's settings (proxy batch and seed);
``evaluate STUDY --trial N`` re-scores a study's trial with that study's own settings,
proxies and device, and shows what the study stored beside, so the two can be compared.
"""

from __future__ import annotations

import argparse
import json

from .common import positive, study_arguments, table


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ..evaluators.cost.analytic import analytic_cost
    from ..evaluators.graph.trace import torch_threads
    from ..evaluators.latency.predict import predict_latency
    from ..evaluators.proxies import check_proxy, zero_cost_all
    from ..explorer.metrics import (
        DEFAULT_DEVICE,
        Objective,
        by_evaluator,
        latency_device,
        metric_label,
        shown,
    )
    from ..search_space.naming import layer_name

    spec, evaluation, stored, metrics = _subject(args)
    device = args.device or next(filter(None, map(latency_device, metrics)), DEFAULT_DEVICE)
    proxies = [check_proxy(p) for p in args.proxy or by_evaluator(metrics, "zero_cost")]
    costs = analytic_cost(spec)
    with torch_threads(evaluation.threads):
        total, kernels = predict_latency(spec, device, breakdown=True)
        # the ensemble's signals too (ensemble.expressivity, ...): what its number is made of
        scores = (
            zero_cost_all(
                spec,
                proxies=proxies,
                seed=evaluation.seed,
                signals=True,
                batch_size=evaluation.proxy_batch_size,
            )
            if proxies
            else {}
        )
    slowest = sorted(kernels, key=lambda k: k.ms, reverse=True)[: args.top]
    values = {**costs, f"latency.{device}": total, **scores}
    name = spec.name or args.spec + (f" trial {args.trial}" if args.trial is not None else "")
    settings = {"proxy_batch_size": evaluation.proxy_batch_size, "seed": evaluation.seed}
    if args.json:
        print(
            json.dumps(
                {
                    "spec": name,
                    "digest": spec.digest,
                    **costs,
                    "settings": settings,
                    "latency": {
                        "device": str(device),
                        "ms": total,
                        "top_layers": [
                            {
                                "name": layer_name(k.name),
                                "op_class": k.op_class,
                                "ms": k.ms,
                                "macs": k.macs,
                                "bytes": k.bytes,
                                "bound": k.bound,
                            }
                            for k in slowest
                        ],
                    },
                    "proxies": scores,
                    **({"stored": stored} if stored is not None else {}),
                },
                indent=2,
            )
        )
        return
    print(
        f"{name}  digest {spec.digest}  input 1x{spec.in_channels}x"
        f"{spec.input_size}x{spec.input_size}  (proxies: batch {evaluation.proxy_batch_size}, "
        f"seed {evaluation.seed})"
    )
    header = ["metric", "value"] + (["stored in the study"] if stored is not None else [])
    rows = [header]
    for metric, value in values.items():
        signal = metric.startswith("ensemble.")  # an ensemble's signal: not a metric itself
        exact = f" ({value:,})" if metric in ("params", "macs") else ""
        row = [
            metric if signal else metric_label(metric),
            f"{value if signal else shown(metric, value):,.4g}{exact}",
        ]
        if stored is not None:
            row.append(f"{shown(metric, stored[metric]):,.4g}" if metric in stored else "")
        rows.append(row)
    print(table(rows, right={1, 2}))
    for proxy in proxies:  # what each accuracy estimate is worth, where it was measured
        print(Objective(proxy, "maximize").label)
    print(f"\nslowest {len(slowest)} kernels on {device} (predicted, batch 1):")
    krows = [["kernel", "class", "ms", "share", "MMACs", "bound"]]
    krows += [
        [
            layer_name(k.name),
            k.op_class,
            f"{k.ms:.3f}",
            f"{k.ms / total:.1%}",
            f"{k.macs / 1e6:,.2f}",
            k.bound,
        ]
        for k in slowest
    ]
    print(table(krows, right={2, 3, 4}))


def _subject(args: argparse.Namespace):
    """``(spec, evaluation settings, stored metrics or None, metrics the study asks for)``."""
    from ..explorer import record_of
    from ..explorer.evaluation import Evaluation
    from ..explorer.search import quiet_optuna
    from ..search_space import Spec, load_spec

    if args.trial is None:
        return load_spec(args.spec), Evaluation(), None, []
    from ..errors import AttendSearchError
    from ..studies import load, place

    with quiet_optuna():
        config, study = load(place(args.spec, args.storage, args.root))
    trials = [t for t in study.get_trials(deepcopy=False) if t.number == args.trial]
    record = record_of(trials[0]) if trials else None
    if record is None:
        raise AttendSearchError(
            f"--trial {args.trial}: study {config.name} has no evaluated "
            f"trial with that number (see attend-search show)"
        )
    return (
        Spec.from_dict(record.spec),
        config.search.evaluation,
        record.metrics,
        config.search.metrics,
    )


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "evaluate",
        help="costs, predicted latency and zero-cost proxies of a "
        "spec, or of a study's trial with the study's settings",
    )
    s.add_argument("spec", help="spec JSON file or preset name; with --trial, a study")
    s.add_argument(
        "--trial",
        type=int,
        metavar="N",
        help="evaluate trial N of the study named, with its proxies, device, proxy "
        "batch and seed, beside the values the study stored",
    )
    s.add_argument(
        "--device",
        help="built-in device or profile YAML (default: the study's "
        "latency device, else cortex-a72)",
    )
    s.add_argument(
        "--proxy",
        action="append",
        default=[],
        metavar="NAME",
        help="zero-cost proxy to compute, repeatable (synflow, ensemble, ...; an "
        "unknown name is answered with the list; default: the study's)",
    )
    s.add_argument(
        "--top", type=positive(int), default=10, help="slowest kernels to list (default 10)"
    )
    s.add_argument("--json", action="store_true", help="machine-readable output")
    study_arguments(s)
    s.set_defaults(func=cmd_evaluate)
