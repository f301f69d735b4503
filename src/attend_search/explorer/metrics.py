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
from ..evaluators.devices import load_device
from ..evaluators.proxies import PROXIES

DIRECTIONS = ("minimize", "maximize")


@dataclass(frozen=True)
class MetricKind:
    """A family of metrics: ``pattern`` is a name, or a prefix ending in ``.`` (``latency.``)."""

    pattern: str
    cheap: bool
    direction: str           # the default direction of an objective on it
    unit: str
    evaluator: str           # what computes it, for messages and the report

    def matches(self, metric: str) -> bool:
        if self.pattern.endswith("."):
            return metric.startswith(self.pattern) and len(metric) > len(self.pattern)
        return metric == self.pattern


METRICS: tuple[MetricKind, ...] = (
    MetricKind("params", True, "minimize", "parameters", "analytic_cost"),
    MetricKind("macs", True, "minimize", "MACs", "analytic_cost"),
    MetricKind("peak_activation_bytes", True, "minimize", "bytes", "analytic_cost"),
    MetricKind("latency.", True, "minimize", "ms", "predict_latency"),
    *(MetricKind(name, False, "maximize", "log score" if name == "synflow" else "score",
                 "zero_cost") for name in PROXIES),
    MetricKind("accuracy", False, "maximize", "top-1 fraction", "train_eval"),
)
COST_METRICS = tuple(k.pattern for k in METRICS if k.evaluator == "analytic_cost")


def kind_of(metric: str) -> MetricKind:
    """The table row of ``metric``, or an error that lists what is known."""
    for kind in METRICS:
        if kind.matches(metric):
            return kind
    known = ", ".join(k.pattern + ("<device>" if k.pattern.endswith(".") else "")
                      for k in METRICS)
    raise AttendSearchError(f"unknown metric {metric!r}; known: {known}")


def is_cheap(metric: str) -> bool:
    return kind_of(metric).cheap


def latency_device(metric: str) -> str | None:
    """``cortex-a72`` for ``latency.cortex-a72``; None for other metrics."""
    return metric.partition(".")[2] if kind_of(metric).evaluator == "predict_latency" else None


def check_metric(metric: str) -> str:
    """``metric`` if an evaluator computes it (a latency device must load), else an error."""
    device = latency_device(metric)
    if device is not None:
        load_device(device)
    return metric


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str

    def worst(self, a: float, b: float) -> float:
        """The worse of two values for this direction."""
        return max(a, b) if self.direction == "minimize" else min(a, b)
