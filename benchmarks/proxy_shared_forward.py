"""Expressivity, naswot and convolution MACs from one shared forward: which batch, and how
the sum transfers from one benchmark to the other (dev data).

Reads the ``shared`` signal tables of ``proxy_signals.py`` (``--groups shared``), one per
space, and prints each signal's Spearman with CIFAR-10 accuracy, then for each batch the
equal-weight sum of the three signals, each divided by its spread: over the design space
(scored there and on the other space, held out, both ways), and over both spaces at once
(the spreads read no accuracy).

    python benchmarks/proxy_shared_forward.py \\
        benchmarks/measurements/signals-shared-nb201-dev-1000.csv \\
        benchmarks/measurements/signals-shared-macro-dev.csv
"""

from __future__ import annotations

import sys

import pandas as pd
from scipy.stats import spearmanr

BATCHES = (2, 4, 8, 16)


def rho(frame: pd.DataFrame, score: pd.Series) -> float:
    return float(spearmanr(score, frame["accuracy"]).statistic)


def summed(frame: pd.DataFrame, columns: list[str], spreads: dict[str, float]) -> pd.Series:
    return sum(frame[c] / spreads[c] for c in columns)


def main(nb201: str, macro: str) -> None:
    spaces = {"nb201": pd.read_csv(nb201), "macro": pd.read_csv(macro)}
    print(", ".join(f"{name}: {len(f)} archs" for name, f in spaces.items()))
    columns = ["log_conv_macs"] + [f"{k}{b}" for b in BATCHES for k in ("expr", "prog", "naswot")]
    print(f"\n{'signal':<16}" + "".join(f"{s:>8}" for s in spaces))
    for c in columns:
        print(f"{c:<16}" + "".join(f"{rho(f, f[c]):8.3f}" for f in spaces.values()))
    print("\nexpr + naswot + log conv MACs, each over its spread:")
    print(f"{'batch':<6}{'nb201 -> macro':>16}{'macro -> nb201':>16}{'both spreads':>22}")
    for b in BATCHES:
        cols = [f"expr{b}", f"naswot{b}", "log_conv_macs"]
        cells = []
        for design, other in (("nb201", "macro"), ("macro", "nb201")):
            spreads = {c: spaces[design][c].std() for c in cols}
            cells.append(f"{rho(spaces[other], summed(spaces[other], cols, spreads)):.3f}")
        both = {c: sum(f[c].std() for f in spaces.values()) / 2 for c in cols}
        pooled = " / ".join(f"{rho(f, summed(f, cols, both)):.3f}" for f in spaces.values())
        print(f"{b:<6}{cells[0]:>16}{cells[1]:>16}{pooled:>22}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
