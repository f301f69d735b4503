"""How well do the zero-cost proxies rank networks? Against NAS-Bench-201's CIFAR-10 accuracy.

Takes architectures of the NAS-Bench-201 dev data (the benchmark's 200-epoch CIFAR-10 test
accuracy per cell), builds each network, scores it with every proxy (``ensemble`` included)
for several seeds (weights and synthetic batch), and prints, for the parameter count, the
MACs and each proxy: Spearman's rho and Kendall's tau against accuracy and the top-10% hit
rate (the share of the predictor's top 10% that is in the true top 10%), as the mean and
spread over seeds; and the CPU time per network.

The ensemble's scales (``proxies.ENSEMBLE_SCALES``, from the signals alone) and weights
(``proxies.ENSEMBLE_WEIGHTS``, chosen by rank correlation with accuracy) were set on the dev
data: the row ``ensemble, 5-fold CV`` repeats both choices on four fifths of the
architectures here (scales: each signal's standard deviation; weights: the grid
``WEIGHT_GRID`` for each signal, expressivity's fixed at 1, the best Spearman) and scores the
fifth left out, for each fifth in turn, so that no network is scored with a choice that saw it.

    python benchmarks/bench_proxies.py --archs 1000 --seeds 3 --out nb201-scores.json
    python benchmarks/bench_proxies.py --report nb201-scores.json      # the tables again
    python benchmarks/bench_proxies.py --quick                          # seconds: 24 archs
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import time
from itertools import product
from pathlib import Path

import numpy as np
import torch
from dev_data import NB201_DEV
from scipy.stats import kendalltau, spearmanr

from attend_search import nb201_spec
from attend_search.cli.common import table
from attend_search.evaluators.cost.analytic import analytic_cost
from attend_search.evaluators.proxies import ENSEMBLE_SCALES, PROXIES, zero_cost_all

FOLDS = 5
WEIGHT_GRID = (0, 0.5, 1, 1.5, 2)  # each signal's weight, relative to expressivity's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(NB201_DEV), help="CSV of arch_str, cifar10_test_accuracy"
    )
    parser.add_argument("--archs", type=int, default=1000, help="architectures, drawn at random")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="synthetic batch of the proxies")
    parser.add_argument("--out", help="write every network's scores here (JSON)")
    parser.add_argument(
        "--report", help="print the tables of a file --out wrote, computing nothing"
    )
    parser.add_argument("--quick", action="store_true", help="24 architectures, 2 seeds, batch 8")
    args = parser.parse_args()
    if args.quick:
        args.archs, args.seeds, args.batch_size = 24, 2, 8
    if args.report:
        report(json.loads(Path(args.report).read_text()))
        return
    torch.set_num_threads(1)
    with open(args.data) as f:
        rows = list(csv.DictReader(f))
    random.Random(0).shuffle(rows)
    nets = []
    for n, row in enumerate(rows[: args.archs]):
        spec = nb201_spec(row["arch_str"])
        cost = analytic_cost(spec)
        net = {
            "arch": row["arch_str"],
            "accuracy": float(row["cifar10_test_accuracy"]),
            "params": cost["params"],
            "macs": cost["macs"],
            "seeds": [],
            "seconds": [],
        }
        for seed in range(args.seeds):
            start = time.thread_time()
            net["seeds"].append(
                zero_cost_all(spec, seed=seed, batch_size=args.batch_size, signals=True)
            )
            net["seconds"].append(time.thread_time() - start)
        nets.append(net)
        if n % 50 == 0:
            print(
                f"{n + 1} of {args.archs} architectures, {statistics.mean(net['seconds']):.2f} s "
                f"a network",
                flush=True,
            )
    data = {"archs": len(nets), "seeds": args.seeds, "batch_size": args.batch_size, "nets": nets}
    if args.out:
        Path(args.out).write_text(json.dumps(data))
    report(data)


def report(data: dict) -> None:
    nets = data["nets"]
    accuracy = np.array([n["accuracy"] for n in nets])
    lines = [["predictor", "Spearman", "Kendall", "top-10% hit"]]
    predictors = {
        "params": lambda s: [n["params"] for n in nets],
        "macs": lambda s: [n["macs"] for n in nets],
        **{name: (lambda s, name=name: [n["seeds"][s][name] for n in nets]) for name in PROXIES},
        "ensemble, 5-fold CV": lambda s: cross_validated(nets, accuracy, s),
    }
    for name, values in predictors.items():
        figures = np.array(
            [rank_figures(np.array(values(s), float), accuracy) for s in range(data["seeds"])]
        )
        lines.append(
            [name] + [f"{m:.3f} ± {sd:.3f}" for m, sd in zip(figures.mean(0), figures.std(0))]
        )
    seconds = [t for n in nets for t in n["seconds"]]
    print(
        f"\n{len(nets)} NAS-Bench-201 dev architectures x {data['seeds']} seeds, proxies on a "
        f"synthetic batch of {data['batch_size']}; CIFAR-10 test accuracy {accuracy.min():.1f} "
        f".. {accuracy.max():.1f}%; mean ± spread over seeds\n"
    )
    print(table(lines, right={1, 2, 3}))
    print(
        f"\nall proxies of one network together: {statistics.median(seconds):.2f} s CPU (median, "
        f"one thread, network built included)"
    )


def rank_figures(scores: np.ndarray, accuracy: np.ndarray) -> tuple[float, float, float]:
    """Spearman, Kendall (tau-b) and the top-10% hit rate of ``scores`` against accuracy.
    Non-finite scores (a log of 0) rank lowest."""
    scores = np.where(np.isfinite(scores), scores, np.nanmin(scores[np.isfinite(scores)]) - 1)
    top = max(1, len(scores) // 10)
    hits = len(set(np.argsort(-scores)[:top]) & set(np.argsort(-accuracy)[:top])) / top
    return spearmanr(scores, accuracy)[0], kendalltau(scores, accuracy)[0], hits


def cross_validated(nets: list[dict], accuracy: np.ndarray, seed: int) -> list[float]:
    """The ensemble of every network with scales and weights chosen on the other folds'
    networks (see the module docstring), as ``ENSEMBLE_SCALES`` and ``ENSEMBLE_WEIGHTS`` were."""
    signals = {
        k: np.array([n["seeds"][seed][f"ensemble.{k}"] for n in nets]) for k in ENSEMBLE_SCALES
    }
    first, *others = signals
    order = np.random.default_rng(seed).permutation(len(nets))
    scores = np.zeros(len(nets))
    for fold in np.array_split(order, FOLDS):
        rest = np.setdiff1d(order, fold)
        scaled = {k: v / v[rest].std() for k, v in signals.items()}
        combined = [
            scaled[first] + sum(w * scaled[k] for w, k in zip(weights, others))
            for weights in product(WEIGHT_GRID, repeat=len(others))
        ]
        best = max(combined, key=lambda c: spearmanr(c[rest], accuracy[rest])[0])
        scores[fold] = best[fold]
    return list(scores)


if __name__ == "__main__":
    main()
