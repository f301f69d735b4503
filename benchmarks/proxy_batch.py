"""How many examples should the ensemble's forward take? Its three signals at each batch,
held out both ways (dev data).

For each benchmark (1,200 NAS-Bench-201 dev architectures drawn at random with seed 1, all
1,961 NAS-Bench-Macro classes), computes the ensemble's signals (expressivity as the mean
over blocks, naswot, conv MACs) from one forward of B synthetic examples, seed 0, and prints
each signal's Spearman with CIFAR-10 accuracy, then the equal-weight sum of the three, each
divided by its spread on one benchmark and scored on the other, both ways; and the spreads
averaged over both (what ``proxies.ENSEMBLE_SCALES`` holds for the shipped batch).

    python benchmarks/proxy_batch.py --batches 4 8
"""

from __future__ import annotations

import argparse
import csv
import random

import numpy as np
import torch
from dev_data import MACRO_DEV, NB201_DEV
from scipy.stats import spearmanr

from attend_search import build_model, input_shape, macro_spec, nb201_spec
from attend_search.evaluators.estimate_fit import SIGNALS
from attend_search.evaluators.model_input import seeded
from attend_search.evaluators.proxies.ensemble import one_forward
from attend_search.evaluators.proxies.probe import scratch, synthetic

SPACES = {
    "NAS-Bench-201": (NB201_DEV, "arch_str", nb201_spec, 1200),
    "NAS-Bench-Macro": (MACRO_DEV, "arch", macro_spec, 1961),
}


def signals(space: str, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(networks x signals, accuracies, each signal's spread over its finite values); a log
    of 0 (a dead network) taken as the lowest value."""
    path, column, make, n = SPACES[space]
    with open(path) as f:
        rows = list(csv.DictReader(f))
    rows = random.Random(1).sample(rows, min(n, len(rows)))
    values, accuracy = [], []
    for row in rows:
        spec = make(row[column])
        with seeded(0):
            model = scratch(build_model(spec), copy=False)
        s = one_forward(model, synthetic(input_shape(spec), batch, 1, 0)[0])
        values.append([s[k] for k in SIGNALS])
        accuracy.append(float(row["cifar10_test_accuracy"]))
    x = np.array(values)
    spread = np.array([x[np.isfinite(x[:, j]), j].std() for j in range(x.shape[1])])
    for j in range(x.shape[1]):
        ok = np.isfinite(x[:, j])
        x[~ok, j] = x[ok, j].min()
    return x, np.array(accuracy), spread


def rho(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 8])
    args = parser.parse_args()
    torch.set_num_threads(1)
    for batch in args.batches:
        data = {space: signals(space, batch) for space in SPACES}
        print(f"\nbatch {batch}; Spearman of each signal on " + " and ".join(SPACES))
        for j, name in enumerate(SIGNALS):
            cells = "".join(f"{rho(x[:, j], a):8.3f}" for x, a, _ in data.values())
            print(f"  {name:<13}{cells}")
        names = list(SPACES)
        for design, held in (names, names[::-1]):
            x, a, _ = data[held]
            print(
                f"  spreads of {design}, held out {held}: {rho(x @ (1 / data[design][2]), a):.3f}"
            )
        both = np.mean([spread for _, _, spread in data.values()], 0)
        print("  spreads of both: " + ", ".join(f"{k} {v:.4f}" for k, v in zip(SIGNALS, both)))


if __name__ == "__main__":
    main()
