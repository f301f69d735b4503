"""Leave-one-space-out design of an accuracy estimate, and the learning curve of a fitted one.

Reads the signal tables of ``benchmarks/proxy_signals.py`` (one per space) and, for issue 22:

1. every single signal's Spearman with CIFAR-10 accuracy on each space;
2. candidate estimates, each a sum of transformed signals, designed on ONE space and scored
   on the OTHER, in both directions. What the design may choose on its space: the subset of
   signals (exhaustively, equal weights: ``subset``), or the weights too (a linear regression
   on the design space's standardised signals: ``regress``). Transforms, none of which reads
   accuracy: ``popz`` (standardised within the population being ranked), ``rank`` (AZ-NAS's
   log of the normalised rank within the population), ``fixed`` (divided by the standard
   deviation over the DESIGN space: constants, no population needed when scoring);
3. fixed candidates (chosen a priori, not tuned on either space), scored on both;
4. the learning curve of a fitted estimate: from N pairs of one space, weights fitted by ridge
   regression on the standardised signals (towards the built-in equal weights, or towards 0),
   Spearman on the rest of the space, median over draws; beside the built-in estimate and
   log MACs (one feature: its fit only picks a sign).

    python benchmarks/proxy_design.py benchmarks/measurements/signals-nb201-dev-602.csv \\
        benchmarks/measurements/signals-macro-dev-415.csv
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

# signals a design may use (higher = better for all, as computed); ``ensemble`` is the
# shipped estimate, a baseline, not a candidate signal
SIGNALS = [
    "synflow",
    "naswot",
    "grad_norm",
    "snip",
    "zico",
    "ens_expressivity",
    "ens_progressivity",
    "log_macs",
    "log_params",
    "expr16",
    "prog16",
    "zen",
    "meco",
]
BASELINES = ["ensemble", "log_macs", "log_params"]
# fixed candidates: chosen before looking at either space's accuracy ranking of the combination
FIXED = {
    "expr+naswot+macs": ["ens_expressivity", "naswot", "log_macs"],
    "expr+naswot+macs+synflow": ["ens_expressivity", "naswot", "log_macs", "synflow"],
    "expr16+naswot+macs": ["expr16", "naswot", "log_macs"],
    "expr16+naswot+macs+synflow": ["expr16", "naswot", "log_macs", "synflow"],
    "expr+naswot+macs+zico": ["ens_expressivity", "naswot", "log_macs", "zico"],
    "expr+macs+synflow": ["ens_expressivity", "log_macs", "synflow"],
    # within 2x synflow's cost (expressivity on 2 examples shares synflow's network)
    "expr+macs": ["ens_expressivity", "log_macs"],
    "2expr+macs+synflow": ["ens_expressivity", "ens_expressivity", "log_macs", "synflow"],
    "expr+expr16+naswot+macs": ["ens_expressivity", "expr16", "naswot", "log_macs"],
}


def rho(score, accuracy) -> float:
    return float(spearmanr(score, accuracy).statistic)


def transform(frame: pd.DataFrame, kind: str, design: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each signal column made comparable; ``design``: the space the constants come from."""
    x = frame.astype(float)
    if kind == "popz":
        return (x - x.mean()) / x.std(ddof=0).replace(0, 1)
    if kind == "rank":  # AZ-NAS: log of the rank / N (1 the best)
        return np.log(x.rank(method="average") / len(x))
    if kind == "fixed":
        d = design.astype(float)
        return x / d.std(ddof=0).replace(0, 1)
    raise ValueError(kind)


def combo(
    frame: pd.DataFrame,
    signals: list[str],
    kind: str,
    weights=None,
    design: pd.DataFrame | None = None,
) -> np.ndarray:
    t = transform(frame[signals], kind, None if design is None else design[signals])
    w = np.ones(len(signals)) if weights is None else np.asarray(weights)
    return t.to_numpy() @ w


def best_subset(design: pd.DataFrame, pool: list[str], kind: str, max_size: int = 6):
    """The equal-weight subset with the best Spearman on the design space."""
    best = (-2.0, None)
    for k in range(1, max_size + 1):
        for subset in itertools.combinations(pool, k):
            r = rho(combo(design, list(subset), kind, design=design), design.accuracy)
            if r > best[0]:
                best = (r, list(subset))
    return best


def regress(design: pd.DataFrame, pool: list[str]) -> np.ndarray:
    """Least-squares weights of the standardised signals for the accuracy's normal scores."""
    x = transform(design[pool], "popz").to_numpy()
    y = _normal_scores(design.accuracy.to_numpy())
    return np.linalg.lstsq(x, y, rcond=None)[0]


def _normal_scores(y: np.ndarray) -> np.ndarray:
    from scipy.stats import norm

    return norm.ppf((rankdata(y) - 0.5) / len(y))


def ridge(x: np.ndarray, y: np.ndarray, lam: float, prior: np.ndarray) -> np.ndarray:
    """argmin |y - x w|^2 + lam |w - prior|^2."""
    k = x.shape[1]
    return np.linalg.solve(x.T @ x + lam * np.eye(k), x.T @ y + lam * prior)


def learning_curve(
    frame: pd.DataFrame, signals: list[str], ns=(10, 20, 50), draws: int = 20, seed: int = 0
) -> pd.DataFrame:
    """Median held-in-space Spearman on the rest, fitted on N pairs."""
    z = transform(frame[signals], "popz").to_numpy()
    macs = frame.log_macs.to_numpy()
    acc = frame.accuracy.to_numpy()
    builtin = z.sum(1)
    rows = []
    rng = np.random.default_rng(seed)
    for n in ns:
        res = {
            k: [] for k in ("builtin", "log_macs_fit", "ridge_to_builtin", "ridge_to_zero", "ols")
        }
        for _ in range(draws):
            idx = rng.permutation(len(frame))
            train, test = idx[:n], idx[n:]
            y = _normal_scores(acc[train])
            res["builtin"].append(rho(builtin[test], acc[test]))
            sign = np.sign(np.polyfit(macs[train], y, 1)[0]) or 1.0
            res["log_macs_fit"].append(rho(sign * macs[test], acc[test]))
            x = z[train]
            # the prior: the built-in equal weights, at the scale a 1-parameter fit gives them
            b = x.sum(1)
            prior = np.full(len(signals), float(b @ y / max(b @ b, 1e-12)))
            for name, lam, p in (
                ("ridge_to_builtin", float(n), prior),
                ("ridge_to_zero", float(n), 0 * prior),
                ("ols", 1e-6, 0 * prior),
            ):
                w = ridge(x, y, lam, p)
                res[name].append(rho(z[test] @ w, acc[test]))
        rows.append({"N": n, **{k: float(np.median(v)) for k, v in res.items()}})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("nb201", type=Path)
    ap.add_argument("macro", type=Path)
    ap.add_argument(
        "--estimate",
        default="expr16,naswot,log_macs",
        help="the recommended estimate's signals (equal weights, popz)",
    )
    args = ap.parse_args(argv)
    spaces = {"nb201": pd.read_csv(args.nb201), "macro": pd.read_csv(args.macro)}
    for name, f in spaces.items():
        f["accuracy"] = f.accuracy.astype(float)
        print(f"{name}: {len(f)} architectures", file=sys.stderr)
    pd.set_option("display.width", 200)

    print("\n## Single signals: Spearman with CIFAR-10 accuracy (dev data)\n")
    single = pd.DataFrame(
        {s: {n: rho(f[s], f.accuracy) for n, f in spaces.items()} for s in SIGNALS + ["ensemble"]}
    ).T
    print(single.round(3).to_string())

    print("\n## Designed on one space, scored on the other (held out)\n")
    rows = []
    for design_name, held_name in (("nb201", "macro"), ("macro", "nb201")):
        design, held = spaces[design_name], spaces[held_name]
        for kind, size in (("popz", 6), ("rank", 6), ("fixed", 6), ("popz", 3), ("fixed", 3)):
            r_in, subset = best_subset(design, SIGNALS, kind, size)
            r_out = rho(combo(held, subset, kind, design=design), held.accuracy)
            rows.append(
                {
                    "design": design_name,
                    "held_out": held_name,
                    "method": f"subset<={size}/{kind}",
                    "signals": "+".join(subset),
                    "rho_design": r_in,
                    "rho_held_out": r_out,
                }
            )
        w = regress(design, SIGNALS)
        rows.append(
            {
                "design": design_name,
                "held_out": held_name,
                "method": "regress/popz",
                "signals": "all, fitted weights",
                "rho_design": rho(combo(design, SIGNALS, "popz", w), design.accuracy),
                "rho_held_out": rho(combo(held, SIGNALS, "popz", w), held.accuracy),
            }
        )
        for base in BASELINES + ["naswot", "ens_expressivity", "synflow", "zico"]:
            rows.append(
                {
                    "design": design_name,
                    "held_out": held_name,
                    "method": "single",
                    "signals": base,
                    "rho_design": rho(design[base], design.accuracy),
                    "rho_held_out": rho(held[base], held.accuracy),
                }
            )
    print(pd.DataFrame(rows).round(3).to_string(index=False))

    print("\n## Fixed candidates (equal weights), both spaces\n")
    rows = []
    for label, signals in {**FIXED, "estimate": args.estimate.split(",")}.items():
        row = {"estimate": label}
        for kind in ("popz", "rank"):
            for n, f in spaces.items():
                row[f"{n}/{kind}"] = rho(combo(f, signals, kind), f.accuracy)
        for design_name, held_name in (("nb201", "macro"), ("macro", "nb201")):
            row[f"{held_name}/fixed<-{design_name}"] = rho(
                combo(spaces[held_name], signals, "fixed", design=spaces[design_name]),
                spaces[held_name].accuracy,
            )
        # constants from both spaces' signals alone: the mean of their standard deviations
        both = pd.concat(
            [spaces["nb201"][signals].std(ddof=0), spaces["macro"][signals].std(ddof=0)], axis=1
        ).mean(axis=1)
        for n, f in spaces.items():
            row[f"{n}/fixed<-both"] = rho((f[signals] / both).sum(axis=1), f.accuracy)
        rows.append(row)
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    signals = args.estimate.split(",")
    for n, f in spaces.items():
        print(
            f"{n} standard deviations of the estimate's signals:",
            f[signals].std(ddof=0).round(4).to_dict(),
        )

    print(
        "\n## Learning curve: fitted on N pairs of one space, Spearman on the rest "
        "(median of 20 draws)\n"
    )
    signals = args.estimate.split(",")
    for n, f in spaces.items():
        print(f"### {n} (signals: {', '.join(signals)})")
        print(learning_curve(f, signals).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
