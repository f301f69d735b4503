"""Does the toolkit find good networks? A search of a benchmark, scored on its ground truth.

Runs the explorer on the ``nas-bench-201`` or ``nas-bench-macro`` space, maximising one
accuracy estimate (``ensemble``, and for comparison ``synflow`` and ``macs``), with the
study's default sampler (TPE) and with random search, for a number of trials and seeds, in
memory, no constraints. The architecture a run returns is its best-scoring trial; the
benchmark looks up its true CIFAR-10 test accuracy in the benchmark's dev data and its rank
among all the dev architectures (1 = best). The dev data holds half of the benchmark's
isomorphism classes, so a run's best trial may be a network whose accuracy it does not hold:
then the best trial that it holds is taken, and the table says how many runs that happened
to. A run never sees accuracy.

    python benchmarks/bench_search_accuracy.py --space macro --trials 100 --seeds 3
    python benchmarks/bench_search_accuracy.py --space nb201 --trials 100 --seeds 3
    python benchmarks/bench_search_accuracy.py --space macro --quick   # seconds: 12 trials
"""

from __future__ import annotations

import argparse
import csv
import statistics
from concurrent.futures import ProcessPoolExecutor

import optuna
from dev_data import MACRO_DEV, NB201_DEV

from attend_search import macro_spec, nb201_spec
from attend_search.cli.common import table
from attend_search.explorer import open_study, optimize, record_of
from attend_search.explorer.search import quiet_optuna
from attend_search.studies import read_study
from attend_search.studies.results import is_feasible

ESTIMATES = ("ensemble", "synflow", "macs")
SAMPLERS = ("tpe", "random")
SPACES = {  # the toolkit's space, its dev data and the column of the arch strings
    "nb201": ("NAS-Bench-201", "nas-bench-201", NB201_DEV, "arch_str", nb201_spec),
    "macro": ("NAS-Bench-Macro", "nas-bench-macro", MACRO_DEV, "arch", macro_spec),
}


def one_run(
    space: str, estimate: str, sampler: str, seed: int, trials: int
) -> list[tuple[float, str]]:
    """Every evaluated trial of one run as ``(estimate, digest)``."""
    import torch

    torch.set_num_threads(1)
    config = read_study(
        {
            "name": f"{space}-{estimate}",
            "space": space,
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
    parser.add_argument("--space", choices=SPACES, required=True)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--estimates", nargs="+", default=list(ESTIMATES))
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    parser.add_argument("--quick", action="store_true", help="12 trials, one seed (for CI)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.seeds = 12, 1
    name, space, data, column, make = SPACES[args.space]
    with open(data) as f:
        accuracy = {
            make(row[column]).digest: float(row["cifar10_test_accuracy"])
            for row in csv.DictReader(f)
        }
    ranked = sorted(accuracy.values(), reverse=True)

    jobs = [(e, s, seed) for e in args.estimates for s in SAMPLERS for seed in range(args.seeds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = dict(
            zip(
                jobs,
                pool.map(one_run, [space] * len(jobs), *zip(*jobs), [args.trials] * len(jobs)),
            )
        )

    print(
        f"\n{name}, {args.trials} trials a run, {args.seeds} seed(s); the best-scoring "
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
