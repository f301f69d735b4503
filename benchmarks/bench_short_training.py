"""When does a proxy suffice, and when to train? Short training against the ensemble, on
NAS-Bench-201 networks.

Takes NAS-Bench-201 dev architectures, trains each for a few epochs on ``digits-hard``
(digits under random affine maps and pixel noise, 10% of training labels replaced: hard
enough that a few epochs do not saturate), records the validation accuracy after every epoch
(the callback that feeds Optuna's pruners in a study), and scores the network with the
``ensemble`` proxy. Prints Kendall's tau between the first epoch's and the last epoch's
accuracy (does one epoch, or a pruner deciding after one, rank like more?), between the
ensemble and the last epoch's accuracy, and of each of them against the benchmark's CIFAR-10
accuracy after 200 epochs; and the CPU time of each per network.

    python benchmarks/bench_short_training.py --specs 30 --epochs 3
    python benchmarks/bench_short_training.py --quick      # minutes: 4 specs, 2 epochs
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import time

import torch
from dev_data import NB201_DEV
from scipy.stats import kendalltau

from attend_search import nb201_spec
from attend_search.cli.common import table
from attend_search.evaluators.proxies import zero_cost
from attend_search.evaluators.training.datasets import load_dataset
from attend_search.evaluators.training.short import train_eval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(NB201_DEV), help="CSV of arch_str, cifar10_test_accuracy"
    )
    parser.add_argument("--specs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dataset", default="digits-hard")
    parser.add_argument("--quick", action="store_true", help="4 specs, 2 epochs (for CI)")
    args = parser.parse_args()
    if args.quick:
        args.specs, args.epochs = 4, 2
    torch.set_num_threads(1)
    with open(args.data) as f:
        rows = list(csv.DictReader(f))
    random.Random(1).shuffle(rows)
    data = load_dataset(args.dataset)
    first, last, ensemble, truth, train_s, proxy_s = [], [], [], [], [], []
    for row in rows[: args.specs]:
        spec = nb201_spec(row["arch_str"])
        epochs: list[float] = []
        start = time.thread_time()
        train_eval(
            spec,
            data,
            args.epochs,
            callback=lambda _, acc, into=epochs: into.append(acc),
            progress=False,
        )
        middle = time.thread_time()
        ensemble.append(zero_cost(spec, proxy="ensemble"))
        proxy_s.append(time.thread_time() - middle)
        train_s.append(middle - start)
        first.append(epochs[0])
        last.append(epochs[-1])
        truth.append(float(row["cifar10_test_accuracy"]))
        print(
            f"{len(truth):3d} {row['arch_str']}  epochs {' '.join(f'{a:.3f}' for a in epochs)}"
            f"  ensemble {ensemble[-1]:.2f}  NB201 {truth[-1]:.2f}",
            flush=True,
        )

    n = args.epochs
    print(
        f"\n{len(truth)} NAS-Bench-201 architectures, {n} epochs on {args.dataset}: "
        f"validation accuracy after epoch 1 {min(first):.3f} .. {max(first):.3f}, after "
        f"epoch {n} {min(last):.3f} .. {max(last):.3f}\n"
    )
    lines = [["pair", "Kendall tau"]]
    for name, a, b in (
        (f"epoch 1 vs epoch {n}", first, last),
        (f"ensemble vs epoch {n}", ensemble, last),
        ("epoch 1 vs NB201 CIFAR-10", first, truth),
        (f"epoch {n} vs NB201 CIFAR-10", last, truth),
        ("ensemble vs NB201 CIFAR-10", ensemble, truth),
    ):
        lines.append([name, f"{kendalltau(a, b)[0]:+.3f}"])
    print(table(lines, right={1}))
    print(
        f"\nCPU s per network (median): training {n} epochs {statistics.median(train_s):.1f}, "
        f"ensemble {statistics.median(proxy_s):.3f}"
    )


if __name__ == "__main__":
    main()
