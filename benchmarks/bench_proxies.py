"""How well do the accuracy estimates rank networks, on a benchmark they were not chosen on?

Scores architectures of a benchmark's dev data (NAS-Bench-201 cells or NAS-Bench-Macro's
MobileNetV2 blocks, with their CIFAR-10 test accuracy) with every zero-cost proxy, the
ensemble's signals, the parameter count and the MACs, for several seeds (weights and
synthetic batch), and prints for each predictor Spearman's rho, Kendall's tau and the top-10%
hit rate against accuracy (mean ± spread over seeds), then the learning curve of
``proxy fit``: the ensemble fitted on N trained networks (10, 20, 50; 20 draws of them) and
scored on the rest, beside the built-in ensemble and FLOPs on the same rest.

Given both benchmarks' scores (``--report NB201.json MACRO.json``), it also prints the
leave-one-space-out table: each estimate chosen on one benchmark and scored on the other.
The ensemble's figures taken from data are its signals' spreads and its weights: here taken
on the design benchmark alone (the spreads; then the weights too, the best of a grid), and
scored on the other. "signals chosen on the other space" repeats the choice of the signals
too: the subset of candidate signals (equal weights, design-space spreads) that ranks the
design benchmark best. The ensemble's rows are recomputed from the stored signals with the
present weights, so a report of an old file shows the present ensemble.

    python benchmarks/bench_proxies.py --space nb201 --archs 1000 --seeds 2 --out nb201.json
    python benchmarks/bench_proxies.py --space macro --archs 1000 --seeds 2 --out macro.json
    python benchmarks/bench_proxies.py --report nb201.json macro.json   # the tables again
    python benchmarks/bench_proxies.py --space macro --timing 30        # ms per signal
    python benchmarks/bench_proxies.py --space nb201 --quick            # seconds: 24 archs
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import statistics
import time
from itertools import combinations, product
from pathlib import Path

import numpy as np
import torch
from dev_data import MACRO_DEV, NB201_DEV
from scipy.stats import kendalltau, spearmanr

from attend_search import build_model, input_shape, macro_spec, nb201_spec
from attend_search.cli.common import table
from attend_search.evaluators.cost.analytic import analytic_cost
from attend_search.evaluators.estimate_fit import combine, fit_ensemble
from attend_search.evaluators.proxies import (
    ENSEMBLE_BATCH,
    ENSEMBLE_SCALES,
    ENSEMBLE_WEIGHTS,
    PROXIES,
    zero_cost,
    zero_cost_all,
)
from attend_search.evaluators.proxies.activation_codes import code_kernel
from attend_search.evaluators.proxies.expressivity import entropy_hooks
from attend_search.evaluators.proxies.probe import scratch, synthetic

SPACES = {
    "nb201": ("NAS-Bench-201", NB201_DEV, "arch_str", nb201_spec),
    "macro": ("NAS-Bench-Macro", MACRO_DEV, "arch", macro_spec),
}
CURVE = (10, 20, 50)  # trained networks a fit sees
DRAWS = 20  # random draws of them
WEIGHT_GRID = (0, 0.5, 1, 1.5, 2, 3)  # each signal's weight, chosen held out
# what the held-out choice of signals picks from: the ensemble's three, and the others that
# rank one benchmark or the other
CANDIDATES = (
    "ensemble.expressivity",
    "ensemble.naswot",
    "ensemble.complexity",
    "synflow",
    "zico",
    "log_params",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=SPACES, help="the benchmark to score")
    parser.add_argument("--archs", type=int, default=1000, help="architectures, drawn at random")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16, help="synthetic batch of the proxies")
    parser.add_argument("--out", help="write every network's scores here (JSON)")
    parser.add_argument(
        "--report", nargs="+", help="print the tables of files --out wrote, computing nothing"
    )
    parser.add_argument("--timing", type=int, help="time each proxy alone on N architectures")
    parser.add_argument("--quick", action="store_true", help="24 architectures, 2 seeds, batch 8")
    args = parser.parse_args()
    if args.report:
        datas = [json.loads(Path(p).read_text()) for p in args.report]
        for data in datas:
            report(data)
        if len(datas) == 2:
            leave_one_space_out(*datas)
        return
    if args.space is None:
        parser.error("--space is required unless --report")
    if args.quick:
        args.archs, args.seeds, args.batch_size = 24, 2, 8
    torch.set_num_threads(1)
    _, path, column, make = SPACES[args.space]
    with open(path) as f:
        rows = list(csv.DictReader(f))
    random.Random(0).shuffle(rows)
    if args.timing:
        timing([make(r[column]) for r in rows[: args.timing]], args.batch_size)
        return
    nets = []
    for n, row in enumerate(rows[: args.archs]):
        spec = make(row[column])
        cost = analytic_cost(spec)
        net = {
            "arch": row[column],
            "accuracy": float(row["cifar10_test_accuracy"]),
            "params": cost["params"],
            "macs": cost["macs"],
            "seeds": [],
        }
        for seed in range(args.seeds):
            net["seeds"].append(
                zero_cost_all(spec, seed=seed, batch_size=args.batch_size, signals=True)
            )
        nets.append(net)
        if n % 100 == 0:
            print(f"{n + 1} of {args.archs} architectures", flush=True)
    data = {
        "space": args.space,
        "seeds": args.seeds,
        "batch_size": args.batch_size,
        "nets": nets,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(data))
    report(data)


def predictors(data: dict, seed: int) -> dict[str, np.ndarray]:
    """Every predictor's values of the networks, for one seed (higher ranks higher); the
    ensemble recomputed from its stored signals with the present weights."""
    nets = data["nets"]
    values = {
        "params": [n["params"] for n in nets],
        "macs": [n["macs"] for n in nets],
        "log_params": [math.log(n["params"]) for n in nets],
        **{k: [n["seeds"][seed][k] for n in nets] for k in nets[0]["seeds"][seed]},
    }
    values["ensemble"] = [
        combine({k: n["seeds"][seed][f"ensemble.{k}"] for k in ENSEMBLE_SCALES}, ENSEMBLE_WEIGHTS)
        for n in nets
    ]
    return {k: finite(np.array(v, float)) for k, v in values.items()}


def finite(scores: np.ndarray) -> np.ndarray:
    """Non-finite scores (the log of 0) rank lowest."""
    ok = np.isfinite(scores)
    return np.where(ok, scores, np.min(scores[ok]) - 1 if ok.any() else 0.0)


def rho(scores: np.ndarray, accuracy: np.ndarray) -> float:
    return float(spearmanr(scores, accuracy).statistic)


def report(data: dict) -> None:
    nets = data["nets"]
    name = SPACES[data["space"]][0]
    accuracy = np.array([n["accuracy"] for n in nets])
    lines = [["predictor", "Spearman", "Kendall", "top-10% hit"]]
    per_seed = [predictors(data, s) for s in range(data["seeds"])]
    top = max(1, len(nets) // 10)
    for key in ["params", "macs", *PROXIES, *(k for k in per_seed[0] if "." in k)]:
        figures = np.array(
            [
                (
                    rho(p[key], accuracy),
                    kendalltau(p[key], accuracy).statistic,
                    len(set(np.argsort(-p[key])[:top]) & set(np.argsort(-accuracy)[:top])) / top,
                )
                for p in per_seed
            ]
        )
        lines.append(
            [key] + [f"{m:.3f} ± {sd:.3f}" for m, sd in zip(figures.mean(0), figures.std(0))]
        )
    print(
        f"\n{name}: {len(nets)} dev architectures x {data['seeds']} seeds, proxies on a "
        f"synthetic batch of {data['batch_size']}; CIFAR-10 test accuracy {accuracy.min():.1f} "
        f".. {accuracy.max():.1f}%; mean ± spread over seeds\n"
    )
    print(table(lines, right={1, 2, 3}))
    learning_curve(per_seed[0], accuracy, name)


def learning_curve(p: dict[str, np.ndarray], accuracy: np.ndarray, name: str) -> None:
    """``proxy fit`` on N networks, scored on the rest, beside the built-in ensemble and
    FLOPs on the same rest: the median over :data:`DRAWS` draws (seed 0's scores)."""
    scaled = np.stack([p[f"ensemble.{k}"] / s for k, s in ENSEMBLE_SCALES.items()], 1)
    lines = [["trained networks", "fitted", "built-in", "FLOPs", "fitted better in"]]
    rng = np.random.default_rng(0)
    for n in (n for n in CURVE if n < len(accuracy) // 2):
        rows = []
        for _ in range(DRAWS):
            order = rng.permutation(len(accuracy))
            seen, rest = order[:n], order[n:]
            fit = fit_ensemble(
                [dict(zip(ENSEMBLE_SCALES, x)) for x in scaled[seen]],
                accuracy[seen],
                ENSEMBLE_WEIGHTS,
            )
            w = np.array([fit.weights[k] for k in ENSEMBLE_SCALES])
            rows.append(
                (
                    rho(scaled[rest] @ w, accuracy[rest]),
                    rho(p["ensemble"][rest], accuracy[rest]),
                    rho(p["macs"][rest], accuracy[rest]),
                )
            )
        r = np.array(rows)
        lines.append(
            [str(n)]
            + [f"{v:.3f}" for v in np.median(r, 0)]
            + [f"{(r[:, 0] > r[:, 1]).sum()} of {DRAWS}"]
        )
    print(
        f"\n`proxy fit` on {name}: Spearman on the networks not fitted, median of {DRAWS} draws\n"
    )
    print(table(lines, right={1, 2, 3, 4}))


def leave_one_space_out(a: dict, b: dict) -> None:
    """Each estimate as chosen on one benchmark, scored on the other (seed 0)."""
    spaces = {
        d["space"]: (predictors(d, 0), np.array([n["accuracy"] for n in d["nets"]])) for d in (a, b)
    }
    keys = ["params", "macs", *PROXIES, *(k for k in spaces[a["space"]][0] if "." in k)]
    rows = [["estimate", *(f"held out: {SPACES[s][0]}" for s in spaces)]]
    for key in keys:
        rows.append([key, *(f"{rho(p[key], acc):.3f}" for p, acc in spaces.values())])
    cells_equal, cells_spreads, cells_weights, cells_chosen = [], [], [], []
    for held_out in spaces:
        design = next(s for s in spaces if s != held_out)
        (dp, dacc), (hp, hacc) = spaces[design], spaces[held_out]
        ours = [f"ensemble.{k}" for k in ENSEMBLE_SCALES]
        cells_equal.append(f"{rho(summed(hp, ours, dp), hacc):.3f}")
        shipped = [ENSEMBLE_WEIGHTS[k] for k in ENSEMBLE_SCALES]
        cells_spreads.append(f"{rho(summed(hp, ours, dp, shipped), hacc):.3f}")
        weights = max(
            (w for w in product(WEIGHT_GRID, repeat=len(ours)) if any(w)),
            key=lambda w: rho(summed(dp, ours, dp, w), dacc),
        )
        cells_weights.append(
            f"{rho(summed(hp, ours, dp, weights), hacc):.3f} ({', '.join(map(str, weights))})"
        )
        subsets = [c for k in range(2, 5) for c in combinations(CANDIDATES, k)]
        best = max(subsets, key=lambda c: rho(summed(dp, list(c), dp), dacc))
        cells_chosen.append(
            f"{rho(summed(hp, list(best), dp), hacc):.3f} ({' + '.join(short(c) for c in best)})"
        )
    rows.append(["equal weights, spreads of the other space", *cells_equal])
    rows.append(["ensemble, spreads of the other space", *cells_spreads])
    rows.append(["ensemble, weights chosen on the other space", *cells_weights])
    rows.append(["signals chosen on the other space", *cells_chosen])
    print("\nleave one space out: Spearman with CIFAR-10 accuracy on the held-out benchmark\n")
    print(table(rows, right={1, 2}))


def summed(p: dict[str, np.ndarray], keys: list[str], spreads_of: dict, weights=None):
    """The signals ``keys`` of ``p``, each divided by its spread in ``spreads_of``, weighed."""
    weights = weights or [1] * len(keys)
    return sum(w * p[k] / spreads_of[k].std() for k, w in zip(keys, weights))


def short(key: str) -> str:
    return key.removeprefix("ensemble.")


def forward_with(spec, hooks_of) -> None:
    """The ensemble's forward of a freshly built network, with the hooks of one signal."""
    model = scratch(build_model(spec), copy=False)
    inputs = synthetic(input_shape(spec), ENSEMBLE_BATCH, 1, 0)[0]
    hooks = hooks_of(model)[1]
    with torch.no_grad():
        model(inputs.contiguous(memory_format=torch.channels_last))
    for h in hooks:
        h.remove()


def timing(specs: list, batch_size: int) -> None:
    """CPU milliseconds per network of each proxy alone (median; the build included), one
    thread, and each one's ratio to synflow's; then the ensemble's forward with each signal's
    hooks alone (the MACs' hooks cost nothing measurable)."""
    jobs = {"build_model": build_model, "analytic_cost": analytic_cost}
    for name in PROXIES:
        jobs[name] = lambda s, name=name: zero_cost(s, proxy=name, batch_size=batch_size)
    jobs["all proxies"] = lambda s: zero_cost_all(s, batch_size=batch_size)
    jobs["ensemble: the forward alone"] = lambda s: forward_with(s, lambda m: (None, []))
    jobs["ensemble: forward + expressivity"] = lambda s: forward_with(s, entropy_hooks)
    jobs["ensemble: forward + naswot"] = lambda s: forward_with(
        s, lambda m: code_kernel(m, ENSEMBLE_BATCH)
    )
    ms = {}
    for name, job in jobs.items():
        per = []
        for spec in specs:
            start = time.thread_time()
            job(spec)
            per.append(1e3 * (time.thread_time() - start))
        ms[name] = statistics.median(per)
    lines = [["signal", "ms a network", "x synflow"]]
    lines += [[k, f"{v:.1f}", f"{v / ms['synflow']:.2f}"] for k, v in ms.items()]
    print(f"\n{len(specs)} networks, batch {batch_size}, one thread, median CPU time\n")
    print(table(lines, right={1, 2}))


if __name__ == "__main__":
    main()
