"""Is a network written outside the toolkit scored as well as our own specs?

NAS-Bench-201's networks written as plain PyTorch modules, after the benchmark's own layout
(a stem, cells in a ``ModuleList`` with their edges in a ``ModuleDict``, residual reduction
blocks, a head of batch norm, ReLU, pooling and a classifier), none of it the toolkit's
builder: ``zero_cost_all`` finds their blocks on its own. For a random sample of the dev
architectures it prints the ensemble's Spearman with CIFAR-10 accuracy on these modules and
on the toolkit's specs of the same cells, and between the two (dev data).

    python benchmarks/bench_outside_module.py --archs 300
"""

from __future__ import annotations

import argparse
import csv
import random

import torch
from dev_data import NB201_DEV
from scipy.stats import spearmanr
from torch import nn

from attend_search import nb201_spec
from attend_search.evaluators.model_input import seeded
from attend_search.evaluators.proxies import zero_cost_all


def rcb(ci, co, k, s):
    """ReLU, convolution, batch norm: NAS-Bench-201's convolution."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(ci, co, k, s, k // 2, bias=False), nn.BatchNorm2d(co))


class Zero(nn.Module):
    def forward(self, x):
        return x * 0.0


def op(name, c):
    return {
        "none": lambda: Zero(),
        "skip_connect": lambda: nn.Identity(),
        "nor_conv_1x1": lambda: rcb(c, c, 1, 1),
        "nor_conv_3x3": lambda: rcb(c, c, 3, 1),
        "avg_pool_3x3": lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
    }[name]()


class Cell(nn.Module):
    """Four nodes; each of nodes 1-3 sums an op of every earlier node."""

    def __init__(self, arch, c):
        super().__init__()
        nodes = [n.strip("|").split("|") for n in arch.split("+")]
        self.edges = nn.ModuleDict()
        self.spec = []
        for j, node in enumerate(nodes, 1):
            for e in node:
                name, i = e.split("~")
                key = f"{j}<-{i}"
                self.edges[key] = op(name, c)
                self.spec.append((j, int(i), key))

    def forward(self, x):
        nodes = [x]
        for j in range(1, 4):
            nodes.append(sum(self.edges[k](nodes[i]) for jj, i, k in self.spec if jj == j))
        return nodes[-1]


class Res(nn.Module):
    def __init__(self, ci, co):
        super().__init__()
        self.a, self.b = rcb(ci, co, 3, 2), rcb(co, co, 3, 1)
        self.down = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(ci, co, 1, bias=False))

    def forward(self, x):
        return self.b(self.a(x)) + self.down(x)


class TinyNetwork(nn.Module):
    """Three stages of ``N`` cells at 16, 32 and 64 channels, residual blocks between."""

    def __init__(self, arch, C=16, N=5, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        cells, c = [], C
        for stage, co in enumerate((C, 2 * C, 4 * C)):
            if stage:
                cells.append(Res(c, co))
                c = co
            cells += [Cell(arch, c) for _ in range(N)]
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.pool, self.classifier = nn.AdaptiveAvgPool2d(1), nn.Linear(c, classes)

    def forward(self, x):
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.classifier(self.pool(self.lastact(x)).flatten(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=300, help="dev architectures, at random")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with open(NB201_DEV) as f:
        rows = random.Random(0).sample(list(csv.DictReader(f)), args.archs)
    outside, ours, accuracy = [], [], []
    for row in rows:
        with seeded(0):
            module = TinyNetwork(row["arch_str"])
        outside.append(zero_cost_all(module, (1, 3, 32, 32), ["ensemble"])["ensemble"])
        ours.append(zero_cost_all(nb201_spec(row["arch_str"]), proxies=["ensemble"])["ensemble"])
        accuracy.append(float(row["cifar10_test_accuracy"]))
    print(
        f"{args.archs} NAS-Bench-201 dev architectures, ensemble's Spearman with CIFAR-10 "
        f"accuracy: modules written outside the toolkit "
        f"{spearmanr(outside, accuracy).statistic:.3f}, the toolkit's specs "
        f"{spearmanr(ours, accuracy).statistic:.3f}; between the two "
        f"{spearmanr(outside, ours).statistic:.3f}"
    )


if __name__ == "__main__":
    main()
