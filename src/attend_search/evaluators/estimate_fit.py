"""How the ensemble combines its signals: the built-in spreads and weights, and weights fitted
to networks a user trained (``proxy fit``; a study names the file as ``ensemble@FILE``).

Torch-free (numpy and scipy only to fit), so that a study's metrics are checked without
them; :mod:`.proxies.ensemble` computes the signals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import AttendSearchError
from ..files import write_atomic
from ..search_space.fields import Fields, parse_yaml, read_user_file

# Each signal's spread: its standard deviation (finite values) over the dev architectures of
# NAS-Bench-201 (1,200 of them) and of NAS-Bench-Macro (all 1,961), the mean of the two (no
# accuracy involved; ``benchmarks/proxy_batch.py``). Each signal is divided by its own, so that
# a weight of 1 is one spread of a typical space.
ENSEMBLE_SCALES = {"expressivity": 0.364, "naswot": 1.74, "complexity": 0.508}
SIGNALS = tuple(ENSEMBLE_SCALES)
# Expressivity counts twice: the best of a grid (each weight in 0-3) by the worse of the two
# benchmarks' Spearman, on a flat optimum; both benchmarks alone weigh expressivity above
# complexity (``benchmarks/bench_proxies.py --report``; docs/accuracy-estimates.md).
ENSEMBLE_WEIGHTS = {"expressivity": 2.0, "naswot": 1.0, "complexity": 1.0}
FITTED = "ensemble@"  # a metric or proxy ensemble@FILE: the weights of a fit file
SCHEMA = "attend-search/ensemble-fit/1"
# How far the fit may leave the built-in weights: the ridge penalties tried, in units of the
# number of networks; leave-one-out picks one (the largest on a tie, the built-in's side).
RIDGE_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
MIN_NETWORKS = 5


class FitError(AttendSearchError):
    """A fit file, or the networks to fit, are malformed."""


def combine(values: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """The weighted sum of the signals, each divided by its spread (:data:`ENSEMBLE_SCALES`)."""
    return sum(weights[name] * values[name] / ENSEMBLE_SCALES[name] for name in SIGNALS)


def check_trained(accuracies: Sequence[float]) -> None:
    """Refuse what cannot be fitted before any network is scored."""
    if len(accuracies) < MIN_NETWORKS:
        raise FitError(f"needs at least {MIN_NETWORKS} trained networks, got {len(accuracies)}")
    if max(accuracies) == min(accuracies):
        raise FitError("every accuracy is the same: nothing to rank")


@dataclass(frozen=True)
class EnsembleFit:
    """Weights of the ensemble's signals (each divided by its spread, as built in), fitted to
    ``networks`` trained networks; ``spearman`` compares leave-one-out rankings of them."""

    weights: dict[str, float]
    networks: int
    ridge: float
    spearman: dict[str, float] = field(default_factory=dict)  # "fitted", "built-in"
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "weights": dict(self.weights),
            "networks": self.networks,
            "ridge": self.ridge,
            "leave_one_out_spearman": dict(self.spearman),
            "provenance": dict(self.provenance),
        }

    def save(self, path: str | Path) -> None:
        write_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def fit_ensemble(
    scaled: Sequence[Mapping[str, float]],
    accuracies: Sequence[float],
    builtin: Mapping[str, float],
    provenance: Mapping | None = None,
) -> EnsembleFit:
    """Weights for the signals ``scaled`` (each already divided by its spread) that rank
    ``accuracies``, drawn towards the ``builtin`` weights.

    A ridge regression of the accuracies' normal scores (ranks, so that a few collapsed
    networks do not steer it) on the signals, shrunk towards the built-in weights rescaled to
    fit, not towards zero: with few networks the fit stays the built-in ensemble, with many it
    learns what the user's space rewards. The penalty is chosen by leave-one-out Spearman.
    """
    import numpy as np
    from scipy.stats import norm, rankdata, spearmanr

    def rho(a: np.ndarray, b: np.ndarray) -> float:
        value = spearmanr(a, b).statistic
        return float(value) if np.isfinite(value) else 0.0

    x = np.array([[row[s] for s in SIGNALS] for row in scaled], dtype=float)
    y = np.asarray(accuracies, dtype=float)
    if not np.isfinite(x).all() or not np.isfinite(y).all():
        raise FitError("a signal or an accuracy is not a finite number")
    check_trained(list(y))
    if np.ptp(x, 0).max() == 0:
        raise FitError("every network has the same signals: nothing to fit them on")
    prior = np.array([builtin[s] for s in SIGNALS], dtype=float)
    z = norm.ppf((rankdata(y) - 0.5) / len(y))  # normal scores of the ranks

    def held_out(ridge: float) -> np.ndarray:
        scores = np.empty(len(x))
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            scores[i] = (x[i] - x[keep].mean(0)) @ _ridge(x[keep], z[keep], prior, ridge)
        return scores

    loo = {r: rho(held_out(r), y) for r in RIDGE_GRID}
    best = max(RIDGE_GRID, key=lambda r: (loo[r], r))
    weights = _ridge(x, z, prior, best)
    if not np.any(weights):
        raise FitError("the signals do not rank these accuracies: every fitted weight is 0")
    return EnsembleFit(
        weights={s: float(w) for s, w in zip(SIGNALS, weights)},
        networks=len(x),
        ridge=best,
        spearman={"fitted": loo[best], "built-in": rho(x @ prior, y)},
        provenance=dict(provenance or {}),
    )


def _ridge(x, z, prior, ridge: float):
    """argmin |z - Xw|^2 + ridge n |w - c prior|^2 on centred data, ``c prior`` the built-in
    weights' least-squares fit."""
    import numpy as np

    xc, zc = x - x.mean(0), z - z.mean()
    base = xc @ prior
    c = float(base @ zc / (base @ base)) if base @ base > 0 else 0.0
    a = xc.T @ xc + ridge * len(x) * np.eye(x.shape[1])
    return np.linalg.solve(a, xc.T @ zc + ridge * len(x) * c * prior)


def load_fit(path: str | Path) -> EnsembleFit:
    """A fit file; errors name the file and the field."""
    source = str(path)
    data = parse_yaml(read_user_file(path, FitError, "ensemble fit file"), source, FitError)
    try:
        f = Fields(data, "", FitError)
        schema = f.str("schema")
        if schema != SCHEMA:
            raise f.fail("schema", f"unsupported schema {schema!r}, expected {SCHEMA!r}")
        w = f.sub("weights")
        weights = {s: w.float(s) for s in SIGNALS}
        w.done()
        if not any(weights.values()):
            raise f.fail("weights", "every weight is 0: that ranks nothing")
        spearman = f.sub("leave_one_out_spearman", {})
        fit = EnsembleFit(
            weights=weights,
            networks=f.int("networks", lo=1),
            ridge=f.float("ridge", lo=0),
            spearman={k: spearman.float(k, lo=-1, hi=1) for k in spearman.data},
            provenance=f.sub("provenance", {}).data,
        )
        f.done()
    except AttendSearchError as exc:
        raise exc.located(source) from None
    return fit
