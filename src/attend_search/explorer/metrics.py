"""The metrics a study can name: one table that objectives, budgets, validation, evaluation
and the report all read.

*Cheap* metrics (exact costs in microseconds, predicted latency in about a millisecond) are
computed for every candidate, feasible or not: budgets on them decide feasibility. *Expensive*
ones (zero-cost proxies, short training) only for candidates that already meet every rule and
every cheap budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import AttendSearchError
from ..evaluators.estimate_fit import FITTED, load_fit
from ..evaluators.latency.devices import load_device
from ..search_space.fields import did_you_mean

DIRECTIONS = ("minimize", "maximize")
DEFAULT_DEVICE = "cortex-a72"  # where latency is predicted when a study names no device


@dataclass(frozen=True)
class MetricKind:
    """A family of metrics: ``pattern`` is a name, or a prefix ending in ``.`` (``latency.``)."""

    pattern: str
    cheap: bool
    direction: str  # the default direction of an objective on it
    unit: str  # of the value shown, after ``scale``: "M", "MB", "ms"
    evaluator: str  # what computes it, for messages and the report
    # measured rank correlation with true accuracy on each benchmark, if it estimates accuracy
    spearman: dict[str, float] | None = None
    scale: float = 1.0  # shown value = stored value x scale (parameters in millions)
    title: str = ""  # its name in headings where that is not the metric's own

    def matches(self, metric: str) -> bool:
        if self.pattern.endswith((".", "@")):
            return metric.startswith(self.pattern) and len(metric) > len(self.pattern)
        return metric == self.pattern

    @property
    def estimates_accuracy(self) -> bool:
        return self.spearman is not None or self.pattern == FITTED


# Spearman's rho of each accuracy estimate with CIFAR-10 test accuracy, as measured on the dev
# halves of two benchmarks: 1,000 architectures of each, mean of 2 seeds, proxies at batch 16
# (`python benchmarks/bench_proxies.py --space nb201|macro`; docs/accuracy-estimates.md).
# Shown beside the estimate wherever it stands for accuracy, so nobody takes it for accuracy.
SPEARMAN = {
    "params": {"NAS-Bench-201": 0.781, "NAS-Bench-Macro": 0.297},
    "macs": {"NAS-Bench-201": 0.754, "NAS-Bench-Macro": 0.730},
    "synflow": {"NAS-Bench-201": 0.758, "NAS-Bench-Macro": 0.648},
    "naswot": {"NAS-Bench-201": 0.702, "NAS-Bench-Macro": 0.894},
    "grad_norm": {"NAS-Bench-201": 0.539, "NAS-Bench-Macro": 0.798},
    "snip": {"NAS-Bench-201": 0.608, "NAS-Bench-Macro": 0.687},
    "zico": {"NAS-Bench-201": 0.813, "NAS-Bench-Macro": 0.704},
    "ensemble": {"NAS-Bench-201": 0.907, "NAS-Bench-Macro": 0.936},
}
# The zero-cost proxies (``evaluators.proxies.PROXIES`` implements these names; a test holds
# the two equal), named here so that reading the table needs no PyTorch.
ZERO_COST = ("synflow", "naswot", "grad_norm", "snip", "zico", "ensemble")

METRICS: tuple[MetricKind, ...] = (
    MetricKind("params", True, "minimize", "M", "analytic_cost", SPEARMAN["params"], 1e-6),
    MetricKind("macs", True, "minimize", "M", "analytic_cost", SPEARMAN["macs"], 1e-6),
    MetricKind(
        "peak_activation_bytes",
        True,
        "minimize",
        "MB",
        "analytic_cost",
        None,
        1e-6,
        "peak activation",
    ),
    MetricKind("latency.", True, "minimize", "ms", "predict_latency"),
    *(
        MetricKind(
            name,
            False,
            "maximize",
            "log score" if name == "synflow" else "score",
            "zero_cost",
            SPEARMAN[name],
        )
        for name in ZERO_COST
    ),
    MetricKind(FITTED, False, "maximize", "score", "zero_cost"),
    MetricKind("accuracy", False, "maximize", "top-1 fraction", "train_eval"),
)
COST_METRICS = tuple(k.pattern for k in METRICS if k.evaluator == "analytic_cost")


def kind_of(metric: str) -> MetricKind:
    """The table row of ``metric``, or an error that lists what is known."""
    for kind in METRICS:
        if kind.matches(metric):
            return kind
    known = ", ".join(k.pattern + _PLACEHOLDER.get(k.pattern[-1], "") for k in METRICS)
    # a family's name with the metric's own suffix: `latncy.cortex-a72` -> `latency.cortex-a72`
    names = [
        k.pattern + metric.partition(k.pattern[-1])[2]
        if k.pattern[-1] in _PLACEHOLDER
        else k.pattern
        for k in METRICS
    ]
    typo = did_you_mean(metric, names)
    hint = f" (did you mean {typo!r}?)" if typo else ""
    raise AttendSearchError(f"unknown metric {metric!r}{hint}; known: {known}")


_PLACEHOLDER = {".": "<device>", "@": "<fit file>"}


def metric_title(metric: str) -> str:
    """The metric as headings name it: its own name, or ``peak activation`` where the name
    says a unit (bytes) other than the one shown (MB)."""
    return kind_of(metric).title or metric


def metric_label(metric: str) -> str:
    """The metric with the unit of :func:`shown` values: ``params (M)``, ``latency.cortex-a72
    (ms)``, ``peak activation (MB)``; every table and axis a user reads is labelled so."""
    return f"{metric_title(metric)} ({kind_of(metric).unit})"


def quantity(metric: str, value: float) -> str:
    """A stored value as a user reads it, number and unit: ``1.82 M``, ``0.407 ms``."""
    return f"{shown(metric, value):.4g} {kind_of(metric).unit}"


def shown(metric: str, value: float) -> float:
    """A stored value in the unit of :func:`metric_label` (parameters in millions, bytes in MB)."""
    return value * kind_of(metric).scale


def is_cheap(metric: str) -> bool:
    return kind_of(metric).cheap


def by_evaluator(metrics: list[str], evaluator: str) -> list[str]:
    """The metrics of ``metrics`` that ``evaluator`` computes (a :attr:`MetricKind.evaluator`)."""
    return [m for m in metrics if kind_of(m).evaluator == evaluator]


def latency_device(metric: str) -> str | None:
    """``cortex-a72`` for ``latency.cortex-a72``; None for other metrics."""
    return metric.partition(".")[2] if kind_of(metric).evaluator == "predict_latency" else None


def check_metric(metric: str) -> str:
    """``metric`` if an evaluator computes it (a latency device must load), else an error."""
    device = latency_device(metric)
    if device is not None:
        load_device(device)
    if kind_of(metric).pattern == FITTED:
        load_fit(metric.removeprefix(FITTED))
    return metric


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str

    def worst(self, a: float, b: float) -> float:
        """The worse of two values for this direction."""
        return max(a, b) if self.direction == "minimize" else min(a, b)

    @property
    def label(self) -> str:
        """The metric, and where it is maximised as an accuracy estimate, that it is one and
        how well it ranked true accuracy (:data:`SPEARMAN`, or the fit file's own figure)."""
        kind = kind_of(self.metric)
        if not kind.estimates_accuracy or self.direction == "minimize":
            return metric_label(self.metric)
        if kind.pattern == FITTED:
            fitted = _fitted(self.metric)
            return f"{metric_label(self.metric)}: accuracy estimate, not accuracy ({fitted})"
        rhos = ", ".join(f"{rho:.2f} {bench}" for bench, rho in kind.spearman.items())
        return (
            f"{metric_label(self.metric)}: accuracy estimate, not accuracy (Spearman with "
            f"CIFAR-10 accuracy on dev data: {rhos}; unmeasured on attention condenser networks)"
        )


def _fitted(metric: str) -> str:
    """What a fit file says of its own quality, or that it cannot be read now."""
    try:
        fit = load_fit(metric.removeprefix(FITTED))
    except AttendSearchError:
        return "fitted to trained networks; the fit file cannot be read now"
    loo = fit.spearman.get("fitted")
    quality = f", leave-one-out Spearman {loo:.2f} on them" if loo is not None else ""
    return f"fitted to {fit.networks} trained networks{quality}"
