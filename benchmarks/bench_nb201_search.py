"""Does the toolkit find good networks? A search of NAS-Bench-201 scored on its ground truth.

Runs the explorer on the ``nas-bench-201`` space, maximising one accuracy estimate
(``ensemble``, and for comparison ``synflow`` and ``params``), with the study's default
sampler (TPE) and with random search, for a number of trials and seeds, in memory, no
constraints. The architecture a run returns is its best-scoring trial; the benchmark looks up
its true CIFAR-10 test accuracy (200 epochs) in the NAS-Bench-201 dev data and its rank
among all the dev architectures (1 = best). The dev data holds half of the benchmark's
isomorphism classes, so a run's best trial may be a cell whose accuracy it does not hold:
then the best trial that it holds is taken, and the table says how many runs that happened
to. A run never sees accuracy.

    python benchmarks/bench_nb201_search.py --trials 200 --seeds 3
    python benchmarks/bench_nb201_search.py --quick          # seconds: 12 trials, one seed
"""

from __future__ import annotations

import argparse
import csv
import statistics
from concurrent.futures import ProcessPoolExecutor

import optuna
from dev_data import NB201_DEV

from attend_search import nb201_spec
from attend_search.cli.common import table
from attend_search.explorer import open_study, optimize, record_of
from attend_search.explorer.search import quiet_optuna
from attend_search.studies import read_study
from attend_search.studies.results import is_feasible

ESTIMATES = ("ensemble", "synflow", "params")
SAMPLERS = ("tpe", "random")


def one_run(estimate: str, sampler: str, seed: int, trials: int) -> list[tuple[float, str]]:
    """Every evaluated trial of one run as ``(estimate, digest)``."""
    import torch

    torch.set_num_threads(1)
    config = read_study(
        {
            "name": f"nb201-{estimate}",
            "space": "nas-bench-201",
            "constraints": {"use": "none"},
            "presets": False,
            "sampler": sampler,
            "seed": seed,
            "objectives": [{"metric": estimate, "direction": "maximize"}],
        }
    ).search
    with quiet_optuna():
        run = open_study(config, optuna.storages.InMemoryStorage())
        optimize(run, n_trials=trials)
    return [
        (t.values[0], record_of(t).digest)
        for t in run.study.get_trials(deepcopy=False)
        if is_feasible(t)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(NB201_DEV), help="CSV of arch_str, cifar10_test_accuracy"
    )
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--estimates", nargs="+", default=list(ESTIMATES))
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    parser.add_argument("--quick", action="store_true", help="12 trials, one seed (for CI)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.seeds = 12, 1
    with open(args.data) as f:
        accuracy = {
            nb201_spec(row["arch_str"]).digest: float(row["cifar10_test_accuracy"])
            for row in csv.DictReader(f)
        }
    ranked = sorted(accuracy.values(), reverse=True)

    jobs = [(e, s, seed) for e in args.estimates for s in SAMPLERS for seed in range(args.seeds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = dict(zip(jobs, pool.map(one_run, *zip(*jobs), [args.trials] * len(jobs))))

    print(
        f"\nNAS-Bench-201, {args.trials} trials a run, {args.seeds} seed(s); the best-scoring "
        f"architecture of each run: true CIFAR-10 test accuracy and rank among "
        f"{len(accuracy)} dev architectures (median of the dev data: "
        f"{statistics.median(ranked):.2f}%; best: {ranked[0]:.2f}%)\n"
    )
    lines = [
        ["estimate", "sampler", "accuracy (%) per seed", "mean", "rank per seed", "not in dev data"]
    ]
    for estimate in args.estimates:
        for sampler in SAMPLERS:
            found, missed = [], 0
            for seed in range(args.seeds):
                known = [(value, d) for value, d in runs[estimate, sampler, seed] if d in accuracy]
                missed += max(v for v, _ in runs[estimate, sampler, seed]) > max(
                    (v for v, _ in known), default=-float("inf")
                )
                found.append(accuracy[max(known)[1]] if known else float("nan"))
            ranks = [1 + sum(a > acc for a in ranked) for acc in found]
            lines.append(
                [
                    estimate,
                    sampler,
                    " ".join(f"{a:.2f}" for a in found),
                    f"{statistics.mean(found):.2f}",
                    " ".join(map(str, ranks)),
                    f"{missed} of {args.seeds}",
                ]
            )
    print(table(lines, right={3}))


if __name__ == "__main__":
    main()
